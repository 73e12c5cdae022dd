// china-mirrors, in Go: the classic domestic-mirror setup guide as one declarative program.
//
// SystemdCgroup on, config_path set, the pause image from a domestic registry, docker.io and
// registry.k8s.io through domestic mirrors, rolled out one node at a time after a canary. The same
// program as examples/china-mirrors (TypeScript), through the component package of this repository.
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"

	containerd "example.com/pulumi-containerd-node/sdk/go/containerdnode"
)

type nodeConfig struct {
	Name    string `json:"name"`
	Host    string `json:"host"`
	HostKey string `json:"hostKey"`
	Port    *int   `json:"port"`
	User    string `json:"user"`
	// This node's containerd, when it differs from the fleet's containerdVersion.
	ContainerdVersion string `json:"containerdVersion"`
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		cfg := config.New(ctx, "")
		privateKey := cfg.RequireSecret("privateKey")
		// Mirrors die without notice: replace the guide's list with your own, no code change.
		dockerHubMirrors := []string{"https://docker.mirrors.sjtug.sjtu.edu.cn", "https://docker.m.daocloud.io"}
		cfg.GetObject("dockerHubMirrors", &dockerHubMirrors)
		k8sMirrors := []string{"https://k8s.m.daocloud.io"}
		cfg.GetObject("k8sMirrors", &k8sMirrors)
		var nodes []nodeConfig
		cfg.RequireObject("nodes", &nodes)

		hosts := func(urls []string) []containerd.RegistryHostArgs {
			out := make([]containerd.RegistryHostArgs, 0, len(urls))
			for _, u := range urls {
				out = append(out, containerd.RegistryHostArgs{Url: u})
			}
			return out
		}
		fleetNodes := make([]containerd.FleetNodeArgs, 0, len(nodes))
		for _, n := range nodes {
			port := 22
			if n.Port != nil {
				port = *n.Port
			}
			node := containerd.FleetNodeArgs{
				Name: n.Name,
				Connection: containerd.ConnectionArgs{
					Host:       pulumi.String(n.Host),
					Port:       pulumi.Float64(float64(port)),
					User:       pulumi.String(orDefault(n.User, "root")),
					HostKey:    pulumi.String(n.HostKey),
					PrivateKey: privateKey,
				},
			}
			if n.ContainerdVersion != "" {
				node.ContainerdVersion = pulumi.StringRef(n.ContainerdVersion)
			}
			fleetNodes = append(fleetNodes, node)
		}

		fleet, err := containerd.NewContainerdFleet(ctx, "k8s-nodes", &containerd.ContainerdFleetArgs{
			ContainerdVersion: pulumi.StringRef(orDefault(cfg.Get("containerdVersion"), "1.7.22")),
			// sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
			SystemdCgroup: pulumi.BoolRef(true),
			// sed -i 's+registry.k8s.io+registry.aliyuncs.com/google_containers+' (the pause image only)
			SandboxImage: pulumi.StringRef(orDefault(cfg.Get("sandboxImage"), "registry.aliyuncs.com/google_containers/pause:3.9")),
			// config_path is always set, to one directory; one hosts.toml per registry, with the right
			// server (registry-1.docker.io, not docker.io) and pull+resolve only.
			Registries: map[string]containerd.RegistryArgs{
				"docker.io":       {Mirrors: hosts(dockerHubMirrors)},
				"registry.k8s.io": {Mirrors: hosts(k8sMirrors)},
			},
			Nodes: fleetNodes,
			// systemctl restart containerd, one node at a time after a first canary, each checked healthy.
			Rollout: &containerd.RolloutArgs{MaxUnavailable: pulumi.StringRef("1"), Canary: pulumi.Float64Ref(1)},
		})
		if err != nil {
			return err
		}
		ctx.Export("waves", fleet.Waves)
		ctx.Export("restartedNodes", fleet.RestartedNodes)
		return nil
	})
}
