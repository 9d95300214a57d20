// Command kubeletish is kubeish's node agent: it registers its Node,
// heartbeats a Lease and runs the pods bound to the node in containerd,
// with CNI networks, probes and logs.
//
//	kubeletish --node-ip IP [flags]          run the agent
//	kubeletish images import FILE…           import OCI image archives (node-side)
//	kubeletish --cleanup                     remove the proxy's iptables rules and the agent's routes
//	kubeletish hollow --nodes N [flags]      run N hollow nodes (no containers) in this process, for scale tests
//	kubeletish log-driver FILE               (started by containerd's shim) write a container's output as CRI logs
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/kubeish/kubeish/kubeletish/app"
	"github.com/kubeish/kubeish/kubeletish/hollow"
	"github.com/kubeish/kubeish/kubeletish/logs"
)

func main() {
	args := os.Args[1:]
	if len(args) >= 2 && args[0] == "log-driver" {
		if err := logs.RunDriver(args[1]); err != nil {
			fmt.Fprintln(os.Stderr, "kubeletish log-driver:", err)
			os.Exit(1)
		}
		return
	}
	o := app.NewOptions()
	fs := pflag.NewFlagSet("kubeletish", pflag.ExitOnError)
	o.AddFlags(fs)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(args) >= 1 && args[0] == "images" {
		_ = fs.Parse(args[1:])
		rest := fs.Args()
		if len(rest) < 2 || rest[0] != "import" {
			fmt.Fprintln(os.Stderr, "usage: kubeletish images import [--containerd-address A] [--containerd-namespace N] FILE…")
			os.Exit(2)
		}
		if err := o.ImportImages(ctx, rest[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "kubeletish:", err)
			os.Exit(1)
		}
		return
	}
	if len(args) >= 1 && args[0] == "hollow" {
		ho := hollow.NewOptions()
		hfs := pflag.NewFlagSet("kubeletish hollow", pflag.ExitOnError)
		ho.AddFlags(hfs)
		_ = hfs.Parse(args[1:])
		if err := ho.Validate(); err != nil {
			fmt.Fprintln(os.Stderr, "kubeletish hollow:", err)
			os.Exit(2)
		}
		if err := ho.Run(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "kubeletish hollow:", err)
			os.Exit(1)
		}
		return
	}
	_ = fs.Parse(args)
	if o.Cleanup {
		if err := o.CleanupNode(); err != nil {
			fmt.Fprintln(os.Stderr, "kubeletish --cleanup:", err)
			os.Exit(1)
		}
		return
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "kubeletish:", err)
		os.Exit(2)
	}
	if err := o.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kubeletish:", err)
		os.Exit(1)
	}
}
