// Command controller runs kubeish's reconcile loops (ReplicaSet,
// Deployment, Endpoints and EndpointSlices, namespace deletion, node
// lifecycle and pod CIDRs, garbage collection) against the apiserver,
// active/standby under leader election.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/kubeish/kubeish/controller/app"
)

func main() {
	// The controller's heap is mostly its informer caches (every pod,
	// ReplicaSet, node, …), live for as long as it runs, while its
	// allocation rate is low: with Go's default GOGC=100 its resident
	// memory settles at twice those caches, with 50 at one and a half, for
	// a little more GC work in a burst of events (see README, Performance).
	// An explicit GOGC still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "controller:", err)
		os.Exit(1)
	}
}

func run() error {
	o := app.NewOptions()
	fs := pflag.NewFlagSet("controller", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == pflag.ErrHelp {
			return nil
		}
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	log, err := o.Logging.Build()
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	cfg, err := o.Client.Config()
	if err != nil {
		return err
	}
	c, err := app.New(o, cfg, log.Named("controller"))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return c.Run(ctx)
}
