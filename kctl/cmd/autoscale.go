package cmd

import (
	"fmt"

	"github.com/spf13/cobra"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

type autoscaleOptions struct {
	name       string
	min, max   int32
	cpuPercent int32
	dryRun     string
}

func newAutoscaleCommand(f *Factory, s Streams) *cobra.Command {
	o := &autoscaleOptions{}
	c := &cobra.Command{
		Use:   "autoscale (deployment|replicaset) NAME --max M [--min N] [--cpu-percent P]",
		Short: "Create a HorizontalPodAutoscaler (autoscaling/v2) that keeps a deployment's or replicaset's CPU near a target",
		Long: "Create a HorizontalPodAutoscaler named like its target, between --min and --max replicas, aiming at --cpu-percent of the pods' CPU requests " +
			"(without it, the server's default of 80%). The pods' containers must request CPU.",
		Example: "  kctl autoscale deployment web --min 2 --max 10 --cpu-percent 50\n  kctl autoscale rs/web-7d9c --max 5",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(c *cobra.Command, args []string) error {
			if o.max < 1 {
				return fmt.Errorf("--max=MAXPODS is required and must be at least 1, max: %d", o.max)
			}
			minSet := c.Flags().Changed("min")
			if minSet && o.max < o.min {
				return fmt.Errorf("--max=MAXPODS must be larger or equal to --min=MINPODS, max: %d, min: %d", o.max, o.min)
			}
			if o.cpuPercent == 0 || o.cpuPercent < -1 {
				return fmt.Errorf("--cpu-percent must be at least 1, not %d", o.cpuPercent)
			}
			if err := checkDryRun(o.dryRun); err != nil {
				return err
			}
			targets, err := parseTargets(f, args)
			if err != nil {
				return err
			}
			if len(targets) != 1 || len(targets[0].names) != 1 {
				return fmt.Errorf("give one deployment or replicaset: KIND NAME or KIND/NAME")
			}
			m, name := targets[0].mapping, targets[0].names[0]
			gvk := m.GroupVersionKind
			if gvk.Group != "apps" || (gvk.Kind != "Deployment" && gvk.Kind != "ReplicaSet") {
				return fmt.Errorf("cannot autoscale a %s: only deployments and replicasets have a scale", mappingName(m))
			}
			dyn, err := f.Dynamic()
			if err != nil {
				return err
			}
			ns := f.DefaultNamespace()
			if _, err := resourceClient(dyn, m, ns).Get(c.Context(), name, metav1.GetOptions{}); err != nil {
				return err
			}
			hpa := &autoscalingv2.HorizontalPodAutoscaler{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
					ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Name: name},
					MaxReplicas:    o.max,
				},
			}
			if o.name != "" {
				hpa.Name = o.name
			}
			if minSet {
				hpa.Spec.MinReplicas = ptr.To(o.min)
			}
			if o.cpuPercent > 0 {
				hpa.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
					Name:   corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(o.cpuPercent)},
				}}}
			}
			if o.dryRun != "client" {
				cs, err := f.Clientset()
				if err != nil {
					return err
				}
				if _, err := cs.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(c.Context(), hpa, metav1.CreateOptions{DryRun: dryRunOpt(o.dryRun), FieldValidation: "Strict"}); err != nil {
					return err
				}
			}
			fmt.Fprintf(s.Out, "horizontalpodautoscaler.autoscaling/%s autoscaled%s\n", hpa.Name, dryRunSuffix(o.dryRun))
			return nil
		},
	}
	c.Flags().StringVar(&o.name, "name", "", "the autoscaler's name (default: the target's)")
	c.Flags().Int32Var(&o.min, "min", -1, "the fewest replicas (default: the server's, 1)")
	c.Flags().Int32Var(&o.max, "max", -1, "the most replicas (required)")
	c.Flags().Int32Var(&o.cpuPercent, "cpu-percent", -1, "target average CPU use as a percentage of the pods' requests (default: the server's, 80)")
	dryRunFlag(c, &o.dryRun)
	return c
}
