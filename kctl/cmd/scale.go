package cmd

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func newScaleCommand(f *Factory, s Streams) *cobra.Command {
	var replicas int
	var dryRun string
	c := &cobra.Command{
		Use:     "scale KIND NAME --replicas N | KIND/NAME --replicas N",
		Short:   "Set the replicas of a deployment or replicaset through its scale subresource",
		Example: "  kctl scale deployment web --replicas 5",
		RunE: func(c *cobra.Command, args []string) error {
			if replicas < 0 {
				return fmt.Errorf("--replicas N is required, N >= 0")
			}
			if err := checkDryRun(dryRun); err != nil {
				return err
			}
			targets, err := parseTargets(f, args)
			if err != nil {
				return err
			}
			dyn, err := f.Dynamic()
			if err != nil {
				return err
			}
			ns := f.DefaultNamespace()
			for _, t := range targets {
				if len(t.names) == 0 {
					return fmt.Errorf("give the name of the %s to scale", mappingName(t.mapping))
				}
				for _, name := range t.names {
					if dryRun != "client" {
						patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
						_, err := resourceClient(dyn, t.mapping, ns).Patch(c.Context(), name, types.MergePatchType, []byte(patch),
							metav1.PatchOptions{DryRun: dryRunOpt(dryRun)}, "scale")
						if err != nil {
							return err
						}
					}
					fmt.Fprintf(s.Out, "%s/%s scaled%s\n", mappingName(t.mapping), name, dryRunSuffix(dryRun))
				}
			}
			return nil
		},
	}
	c.Flags().IntVar(&replicas, "replicas", -1, "the number of replicas wanted (required)")
	dryRunFlag(c, &dryRun)
	return c
}

func newLogsCommand(f *Factory, s Streams) *cobra.Command {
	o := &corev1.PodLogOptions{}
	var tail int64
	c := &cobra.Command{
		Use:   "logs POD [-c CONTAINER] [-f] [--tail N]",
		Short: "Print a container's logs (the pod's node agent serves them)",
		Example: `  kctl logs web-7d9c-abcde
  kctl logs web-7d9c-abcde -c sidecar -f --tail 20`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cs, err := f.Clientset()
			if err != nil {
				return err
			}
			name := args[0]
			if kind, n, ok := cutKind(name); ok {
				if kind != "pod" && kind != "pods" && kind != "po" {
					return fmt.Errorf("logs are read from pods; give POD or pod/NAME")
				}
				name = n
			}
			if tail >= 0 {
				o.TailLines = &tail
			}
			stream, err := cs.CoreV1().Pods(f.DefaultNamespace()).GetLogs(name, o).Stream(c.Context())
			if err != nil {
				return err
			}
			defer stream.Close()
			_, err = io.Copy(s.Out, stream)
			if c.Context().Err() != nil {
				return nil
			}
			return err
		},
	}
	c.Flags().StringVarP(&o.Container, "container", "c", "", "the container, when the pod has several")
	c.Flags().BoolVarP(&o.Follow, "follow", "f", false, "keep streaming new lines")
	c.Flags().Int64Var(&tail, "tail", -1, "only the last N lines (-1: all)")
	c.Flags().BoolVarP(&o.Previous, "previous", "p", false, "the logs of the previous, terminated, instance of the container")
	c.Flags().BoolVar(&o.Timestamps, "timestamps", false, "prefix each line with its time")
	return c
}

func cutKind(arg string) (kind, name string, ok bool) {
	for i := 0; i < len(arg); i++ {
		if arg[i] == '/' {
			return arg[:i], arg[i+1:], true
		}
	}
	return "", arg, false
}
