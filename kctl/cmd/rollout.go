package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// Annotations and labels the Deployment controller sets, as Kubernetes'.
const (
	revisionAnnotation    = "deployment.kubernetes.io/revision"
	changeCauseAnnotation = "kubernetes.io/change-cause"
	podTemplateHashLabel  = "pod-template-hash"
)

func newRolloutCommand(f *Factory, s Streams) *cobra.Command {
	c := &cobra.Command{
		Use:   "rollout status|history|undo deployment NAME",
		Short: "Follow, list and undo a deployment's rollouts",
	}
	c.AddCommand(newRolloutStatusCommand(f, s), newRolloutHistoryCommand(f, s), newRolloutUndoCommand(f, s))
	return c
}

// deploymentArg reads "deployment NAME", "deploy/NAME" and the like.
func deploymentArg(f *Factory, args []string) (string, error) {
	targets, err := parseTargets(f, args)
	if err != nil {
		return "", err
	}
	if len(targets) != 1 || len(targets[0].names) != 1 {
		return "", fmt.Errorf("give one deployment: deployment NAME or deployment/NAME")
	}
	if gk := targets[0].mapping.GroupVersionKind.GroupKind(); gk.Group != "apps" || gk.Kind != "Deployment" {
		return "", fmt.Errorf("rollout works on deployments, not %s", mappingName(targets[0].mapping))
	}
	return targets[0].names[0], nil
}

// RolloutStatus says where a deployment's rollout stands, as kubectl
// rollout status words it; done is true once it has rolled out.
func RolloutStatus(d *appsv1.Deployment) (msg string, done bool, err error) {
	if d.Generation > d.Status.ObservedGeneration {
		return "Waiting for deployment spec update to be observed...", false, nil
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
			return "", false, fmt.Errorf("deployment %q exceeded its progress deadline", d.Name)
		}
	}
	st := d.Status
	if d.Spec.Replicas != nil && st.UpdatedReplicas < *d.Spec.Replicas {
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d out of %d new replicas have been updated...", d.Name, st.UpdatedReplicas, *d.Spec.Replicas), false, nil
	}
	if st.Replicas > st.UpdatedReplicas {
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d old replicas are pending termination...", d.Name, st.Replicas-st.UpdatedReplicas), false, nil
	}
	if st.AvailableReplicas < st.UpdatedReplicas {
		return fmt.Sprintf("Waiting for deployment %q rollout to finish: %d of %d updated replicas are available...", d.Name, st.AvailableReplicas, st.UpdatedReplicas), false, nil
	}
	return fmt.Sprintf("deployment %q successfully rolled out", d.Name), true, nil
}

func newRolloutStatusCommand(f *Factory, s Streams) *cobra.Command {
	watchFlag := true
	var timeout time.Duration
	c := &cobra.Command{
		Use:     "status deployment NAME",
		Short:   "Wait until a deployment has rolled out, printing its progress",
		Example: "  kctl rollout status deployment web --timeout 2m",
		RunE: func(c *cobra.Command, args []string) error {
			name, err := deploymentArg(f, args)
			if err != nil {
				return err
			}
			cs, err := f.Clientset()
			if err != nil {
				return err
			}
			ctx := c.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			return followRollout(ctx, s.Out, cs, f.DefaultNamespace(), name, watchFlag)
		},
	}
	c.Flags().BoolVarP(&watchFlag, "watch", "w", true, "wait until the rollout is done (false: print where it is and return)")
	c.Flags().DurationVar(&timeout, "timeout", 0, "give up after this long (0: never)")
	return c
}

func followRollout(ctx context.Context, out io.Writer, cs kubernetes.Interface, ns, name string, follow bool) error {
	client := cs.AppsV1().Deployments(ns)
	last := ""
	check := func(d *appsv1.Deployment) (bool, error) {
		msg, done, err := RolloutStatus(d)
		if err != nil {
			return false, err
		}
		if msg != last {
			fmt.Fprintln(out, msg)
			last = msg
		}
		return done, nil
	}
	for {
		d, err := client.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if done, err := check(d); done || err != nil || !follow {
			return err
		}
		w, err := client.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(), ResourceVersion: d.ResourceVersion})
		if err != nil {
			return err
		}
		done, err := func() (bool, error) {
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return false, fmt.Errorf("timed out waiting for the rollout of deployment %q: %s", name, last)
				case ev, ok := <-w.ResultChan():
					if !ok {
						return false, nil // the watch ended: get and watch again
					}
					switch ev.Type {
					case watch.Deleted:
						return false, fmt.Errorf("deployment %q was deleted", name)
					case watch.Added, watch.Modified:
						if d, ok := ev.Object.(*appsv1.Deployment); ok {
							if done, err := check(d); done || err != nil {
								return done, err
							}
						}
					}
				}
			}
		}()
		if done || err != nil {
			return err
		}
	}
}

// revisionedRS is a ReplicaSet of a deployment with its revision.
type revisionedRS struct {
	rs       *appsv1.ReplicaSet
	revision int64
}

// ownedReplicaSets returns the ReplicaSets d controls, oldest revision
// first.
func ownedReplicaSets(ctx context.Context, cs kubernetes.Interface, d *appsv1.Deployment) ([]revisionedRS, error) {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return nil, err
	}
	list, err := cs.AppsV1().ReplicaSets(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	var out []revisionedRS
	for i := range list.Items {
		rs := &list.Items[i]
		ref := metav1.GetControllerOf(rs)
		if ref == nil || ref.UID != d.UID {
			continue
		}
		rev, _ := strconv.ParseInt(rs.Annotations[revisionAnnotation], 10, 64)
		out = append(out, revisionedRS{rs: rs, revision: rev})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].revision < out[j].revision })
	return out, nil
}

func newRolloutHistoryCommand(f *Factory, s Streams) *cobra.Command {
	var revision int64
	c := &cobra.Command{
		Use:     "history deployment NAME [--revision N]",
		Short:   "List a deployment's revisions, or show one revision's pod template",
		Example: "  kctl rollout history deployment web\n  kctl rollout history deployment web --revision 2",
		RunE: func(c *cobra.Command, args []string) error {
			name, err := deploymentArg(f, args)
			if err != nil {
				return err
			}
			cs, err := f.Clientset()
			if err != nil {
				return err
			}
			d, err := cs.AppsV1().Deployments(f.DefaultNamespace()).Get(c.Context(), name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			rss, err := ownedReplicaSets(c.Context(), cs, d)
			if err != nil {
				return err
			}
			if revision > 0 {
				for _, r := range rss {
					if r.revision == revision {
						fmt.Fprintf(s.Out, "deployment.apps/%s with revision #%d\nPod Template:\n", name, revision)
						data, err := yaml.Marshal(r.rs.Spec.Template)
						if err != nil {
							return err
						}
						_, err = s.Out.Write(indent(data))
						return err
					}
				}
				return fmt.Errorf("unable to find the specified revision %d of deployment %q", revision, name)
			}
			fmt.Fprintf(s.Out, "deployment.apps/%s\n", name)
			w := tabwriter.NewWriter(s.Out, 6, 4, 2, ' ', 0)
			fmt.Fprintln(w, "REVISION\tCHANGE-CAUSE")
			for _, r := range rss {
				if r.revision == 0 {
					continue
				}
				fmt.Fprintf(w, "%d\t%s\n", r.revision, none(r.rs.Annotations[changeCauseAnnotation]))
			}
			return w.Flush()
		},
	}
	c.Flags().Int64Var(&revision, "revision", 0, "show the pod template of this revision")
	return c
}

func indent(data []byte) []byte {
	var out []byte
	start := true
	for _, b := range data {
		if start {
			out = append(out, ' ', ' ')
		}
		out = append(out, b)
		start = b == '\n'
	}
	return out
}

// templateWithoutHash is a ReplicaSet's pod template as its Deployment
// wrote it: without the controller's pod-template-hash label.
func templateWithoutHash(t corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	t = *t.DeepCopy()
	delete(t.Labels, podTemplateHashLabel)
	return t
}

func newRolloutUndoCommand(f *Factory, s Streams) *cobra.Command {
	var toRevision int64
	var dryRun string
	c := &cobra.Command{
		Use:     "undo deployment NAME [--to-revision N]",
		Short:   "Roll a deployment back to its previous (or a given) revision's pod template",
		Example: "  kctl rollout undo deployment web\n  kctl rollout undo deployment web --to-revision 1",
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkDryRun(dryRun); err != nil {
				return err
			}
			name, err := deploymentArg(f, args)
			if err != nil {
				return err
			}
			cs, err := f.Clientset()
			if err != nil {
				return err
			}
			ctx := c.Context()
			d, err := cs.AppsV1().Deployments(f.DefaultNamespace()).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			rss, err := ownedReplicaSets(ctx, cs, d)
			if err != nil {
				return err
			}
			target, err := undoTarget(rss, toRevision)
			if err != nil {
				return fmt.Errorf("%w for deployment %q", err, name)
			}
			tmpl := templateWithoutHash(target.rs.Spec.Template)
			if apiequality.Semantic.DeepEqual(tmpl, d.Spec.Template) {
				fmt.Fprintf(s.Out, "deployment.apps/%s skipped rollback (current template already matches revision %d)\n", name, target.revision)
				return nil
			}
			if dryRun != "client" {
				// A JSON patch with a resourceVersion test: a deployment
				// changed meanwhile is not overwritten blindly.
				patch, err := json.Marshal([]map[string]any{
					{"op": "test", "path": "/metadata/resourceVersion", "value": d.ResourceVersion},
					{"op": "replace", "path": "/spec/template", "value": tmpl},
				})
				if err != nil {
					return err
				}
				if _, err := cs.AppsV1().Deployments(d.Namespace).Patch(ctx, name, types.JSONPatchType, patch, metav1.PatchOptions{DryRun: dryRunOpt(dryRun)}); err != nil {
					return err
				}
			}
			fmt.Fprintf(s.Out, "deployment.apps/%s rolled back%s\n", name, dryRunSuffix(dryRun))
			return nil
		},
	}
	c.Flags().Int64Var(&toRevision, "to-revision", 0, "the revision to go back to (0: the one before the current)")
	dryRunFlag(c, &dryRun)
	return c
}

// undoTarget picks the ReplicaSet to roll back to: revision rev, or the
// second newest when rev is 0.
func undoTarget(rss []revisionedRS, rev int64) (revisionedRS, error) {
	if rev == 0 {
		if len(rss) < 2 {
			return revisionedRS{}, fmt.Errorf("no rollout history found")
		}
		return rss[len(rss)-2], nil
	}
	for _, r := range rss {
		if r.revision == rev {
			return r, nil
		}
	}
	return revisionedRS{}, fmt.Errorf("unable to find the specified revision %d", rev)
}
