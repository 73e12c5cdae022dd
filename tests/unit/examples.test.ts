/** Each example's program under mocks: what it declares and renders (end to end: tests/e2e/examples). */
import * as pulumi from "@pulumi/pulumi";
import { chinaMirrors } from "../../examples/china-mirrors/program";
import { mixedVersions } from "../../examples/mixed-versions/program";
import { privatePullThrough } from "../../examples/private-pull-through/program";
import { TEST_CA_PEM } from "../fixtures/pem";
import { installMocks, settle, valueOf } from "../support/mocks";

afterEach(settle);

const conn = { host: "10.0.0.11", privateKey: "KEY", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPtest" };

test("china-mirrors renders the setup guide, with registry-1.docker.io as Docker Hub's server", async () => {
  const world = installMocks();
  const fleet = chinaMirrors("k8s", { containerdVersion: "1.7.22", nodes: [{ name: "n1", connection: conn }, { name: "n2", connection: conn }] });
  await valueOf(fleet.restartedNodes);
  const config = world.byName("n1:/etc/containerd/config.toml").inputs.stdin as string;
  expect(config).toContain('sandbox_image = "registry.aliyuncs.com/google_containers/pause:3.9"');
  expect(config).toContain("SystemdCgroup = true");
  expect(config).toContain('config_path = "/etc/containerd/certs.d"');
  const hub = world.byName("n1:/etc/containerd/certs.d/docker.io/hosts.toml").inputs.stdin as string;
  expect(hub).toContain('server = "https://registry-1.docker.io"');
  expect(hub).toContain('[host."https://docker.mirrors.sjtug.sjtu.edu.cn"]');
  expect(fleet.waves).toEqual([["n1"], ["n2"]]);
});

test("private-pull-through ships the CA, sets override_path, and keeps credentials secret", async () => {
  const world = installMocks();
  const fleet = privatePullThrough("k8s", {
    containerdVersion: "2.1.4",
    harborUrl: "https://harbor.example.test",
    projects: { "docker.io": "dockerhub-proxy", "ghcr.io": "ghcr-proxy" },
    caPem: TEST_CA_PEM,
    username: "robot$puller",
    password: pulumi.secret("s3cret"),
    nodes: [{ name: "n1", connection: conn }],
  });
  await valueOf(fleet.restartedNodes);
  const hub = world.byName("n1:/etc/containerd/certs.d/docker.io/hosts.toml");
  expect(hub.secretInputs).toContain("stdin");
  expect(hub.inputs.stdin).toContain('[host."https://harbor.example.test/v2/dockerhub-proxy"]');
  expect(hub.inputs.stdin).toContain("override_path = true");
  expect(hub.inputs.stdin).toContain('ca = "/etc/containerd/certs.d/docker.io/harbor.example.test.ca.crt"');
  expect(hub.inputs.stdin).toContain(`Basic ${Buffer.from("robot$puller:s3cret").toString("base64")}`);
  const ca = world.byName("n1:/etc/containerd/certs.d/docker.io/harbor.example.test.ca.crt");
  expect(ca.secretInputs).not.toContain("stdin");
  expect(world.byName("n1:/etc/containerd/certs.d/_default/hosts.toml").inputs.stdin).toContain('[host."https://harbor.example.test"]');
  expect(world.byName("n1:/etc/containerd/config.toml").inputs.stdin).not.toContain("s3cret");
});

test("mixed-versions gives 1.7 nodes a version 2 file and 2.x nodes a version 3 file", async () => {
  const world = installMocks();
  const fleet = mixedVersions("k8s", {
    dockerHubMirror: "https://mirror.example.test",
    nodes: [
      { name: "old", containerdVersion: "1.7.22", connection: conn },
      { name: "new", containerdVersion: "2.1.4", connection: conn },
    ],
  });
  await valueOf(fleet.restartedNodes);
  expect(world.byName("old:/etc/containerd/config.toml").inputs.stdin).toMatch(/version = 2[\s\S]*sandbox_image = "registry.k8s.io\/pause:3.10"/);
  expect(world.byName("new:/etc/containerd/config.toml").inputs.stdin).toMatch(/version = 3[\s\S]*pinned_images\]\nsandbox = "registry.k8s.io\/pause:3.10"/);
});
