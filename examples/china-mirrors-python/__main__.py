"""china-mirrors, in Python: the classic domestic-mirror setup guide as one declarative program.

SystemdCgroup on, config_path set, the pause image from a domestic registry, docker.io and
registry.k8s.io through domestic mirrors, rolled out one node at a time after a canary. The same
program as examples/china-mirrors (TypeScript), through the component package of this repository.
"""
import pulumi
import pulumi_containerd_node as containerd

config = pulumi.Config()
private_key = config.require_secret("privateKey")
containerd_version = config.get("containerdVersion") or "1.7.22"
# Mirrors die without notice: replace the guide's list with your own, no code change.
docker_hub_mirrors = config.get_object("dockerHubMirrors") or [
    "https://docker.mirrors.sjtug.sjtu.edu.cn",
    "https://docker.m.daocloud.io",
]
k8s_mirrors = config.get_object("k8sMirrors") or ["https://k8s.m.daocloud.io"]
sandbox_image = config.get("sandboxImage") or "registry.aliyuncs.com/google_containers/pause:3.9"


def fleet_node(n: dict) -> containerd.FleetNodeArgs:
    return containerd.FleetNodeArgs(
        name=n["name"],
        # This node's containerd, when it differs from the fleet's containerdVersion.
        containerd_version=n.get("containerdVersion"),
        connection=containerd.ConnectionArgs(
            host=n["host"],
            port=n.get("port", 22),
            user=n.get("user", "root"),
            host_key=n["hostKey"],
            private_key=private_key,
        ),
    )


fleet = containerd.ContainerdFleet(
    "k8s-nodes",
    containerd_version=containerd_version,
    # sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
    systemd_cgroup=True,
    # sed -i 's+registry.k8s.io+registry.aliyuncs.com/google_containers+' (the pause image only)
    sandbox_image=sandbox_image,
    # config_path is always set, to one directory; one hosts.toml per registry, with the right
    # server (registry-1.docker.io, not docker.io) and pull+resolve only.
    registries={
        "docker.io": containerd.RegistryArgs(mirrors=[containerd.RegistryHostArgs(url=u) for u in docker_hub_mirrors]),
        "registry.k8s.io": containerd.RegistryArgs(mirrors=[containerd.RegistryHostArgs(url=u) for u in k8s_mirrors]),
    },
    nodes=[fleet_node(n) for n in config.require_object("nodes")],
    # systemctl restart containerd, one node at a time after a first canary, each checked healthy.
    rollout=containerd.RolloutArgs(max_unavailable="1", canary=1),
)

pulumi.export("waves", fleet.waves)
pulumi.export("restartedNodes", fleet.restarted_nodes)
