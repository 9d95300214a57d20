// Command kctl is kubeish's command-line client: apply, get, describe,
// delete, logs, scale, rollout and more, against any apiserver that speaks
// the Kubernetes API.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubeish/kubeish/kctl/cmd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cmd.Execute(ctx, cmd.Streams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}, os.Args[1:])
	stop()
	os.Exit(code)
}
