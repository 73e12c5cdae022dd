// sleeper is the fleet's pause image and its long-running container: it waits for SIGTERM or SIGINT
// and exits 0. As the first process of a pod's pid namespace (the pause container's job) it also
// reaps orphans, as the real pause does, so a pod's exited processes never linger as zombies.
//
// Static (CGO_ENABLED=0), standard library only: the image built from it holds this one file
// (tests/fleet/fleet.sh), made here from source, nothing downloaded.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	name := "sleeper"
	if len(os.Args) > 1 {
		name = os.Args[1]
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	fmt.Printf("%s: pid %d waiting for SIGTERM\n", name, os.Getpid())
	for s := range sigs {
		if s == syscall.SIGCHLD {
			reap()
			continue
		}
		fmt.Printf("%s: %v, exiting\n", name, s)
		os.Exit(0)
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
