// Command apiserver serves kubeish's Kubernetes-compatible API over etcd, on
// HTTPS with client-certificate and bearer-token authentication (and, for
// development only, plain HTTP on loopback).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/kubeish/kubeish/apiserver/app"
)

func main() {
	o := app.NewOptions()
	fs := pflag.NewFlagSet("apiserver", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == pflag.ErrHelp {
			return
		}
		os.Exit(2)
	}
	log, err := o.Log.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiserver:", err)
		os.Exit(2)
	}
	defer func() { _ = log.Sync() }()
	if err := run(o, log); err != nil {
		log.Error("apiserver failed", zap.Error(err))
		_ = log.Sync()
		os.Exit(1)
	}
}

func run(o *app.Options, log *zap.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.Start(ctx, *o, log, nil)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return a.Close()
	case err := <-a.Done():
		a.Close()
		return err
	}
}
