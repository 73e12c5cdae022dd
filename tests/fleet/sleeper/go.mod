module containerd-node/tests/fleet/sleeper

go 1.22
