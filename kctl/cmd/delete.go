package cmd

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
)

type deleteOptions struct {
	files          []string
	selector       string
	all            bool
	ignoreNotFound bool
	wait           bool
	timeout        time.Duration
	gracePeriod    int
	dryRun         string
}

func newDeleteCommand(f *Factory, s Streams) *cobra.Command {
	o := &deleteOptions{}
	c := &cobra.Command{
		Use:   "delete KIND NAME... | KIND/NAME... | KIND -l SELECTOR | -f FILE",
		Short: "Delete objects, and wait until they are gone",
		Example: `  kctl delete deploy web
  kctl delete -f manifests/deployment.yaml
  kctl delete pods -l app=web`,
		RunE: func(c *cobra.Command, args []string) error {
			return runDelete(c.Context(), f, s, o, args)
		},
	}
	fl := c.Flags()
	fl.StringSliceVarP(&o.files, "filename", "f", nil, "delete the objects in these manifests")
	fl.StringVarP(&o.selector, "selector", "l", "", "delete the objects of KIND with these labels")
	fl.BoolVar(&o.all, "all", false, "delete every object of KIND in the namespace")
	fl.BoolVar(&o.ignoreNotFound, "ignore-not-found", false, "an object that does not exist is not an error")
	fl.BoolVar(&o.wait, "wait", true, "wait until the objects are gone (finalizers and graceful pod termination done)")
	fl.DurationVar(&o.timeout, "timeout", 0, "how long to wait for the objects to be gone (0: 5m)")
	fl.IntVar(&o.gracePeriod, "grace-period", -1, "seconds given to a pod to stop; -1: the pod's own; 0 with --force: at once")
	dryRunFlag(c, &o.dryRun)
	return c
}

type victim struct {
	mapping *meta.RESTMapping
	ns      string
	name    string
}

func runDelete(ctx context.Context, f *Factory, s Streams, o *deleteOptions, args []string) error {
	if err := checkDryRun(o.dryRun); err != nil {
		return err
	}
	dyn, err := f.Dynamic()
	if err != nil {
		return err
	}
	var victims []victim
	switch {
	case len(o.files) > 0:
		if len(args) > 0 {
			return fmt.Errorf("give either -f or KIND NAME, not both")
		}
		objs, err := readManifests(o.files, s.In, s.ErrOut)
		if err != nil {
			return err
		}
		for _, obj := range objs {
			m, err := f.MappingForKind(obj.GroupVersionKind())
			if err != nil {
				return err
			}
			victims = append(victims, victim{mapping: m, ns: setNamespace(f, m, obj), name: obj.GetName()})
		}
	default:
		if len(args) == 0 {
			return fmt.Errorf("you must give KIND NAME, KIND/NAME, KIND -l SELECTOR or -f FILE")
		}
		targets, err := parseTargets(f, args)
		if err != nil {
			return err
		}
		ns := f.DefaultNamespace()
		for _, t := range targets {
			names := t.names
			if len(names) == 0 {
				if o.selector == "" && !o.all {
					return fmt.Errorf("resource(s) were provided, but no name was specified; give NAME, -l SELECTOR or --all")
				}
				list, err := resourceClient(dyn, t.mapping, ns).List(ctx, metav1.ListOptions{LabelSelector: o.selector})
				if err != nil {
					return err
				}
				for _, it := range list.Items {
					names = append(names, it.GetName())
				}
			}
			for _, n := range names {
				victims = append(victims, victim{mapping: t.mapping, ns: ns, name: n})
			}
		}
		if len(victims) == 0 {
			fmt.Fprintln(s.ErrOut, "No resources found")
			return nil
		}
	}
	opts := metav1.DeleteOptions{DryRun: dryRunOpt(o.dryRun)}
	if o.gracePeriod >= 0 {
		g := int64(o.gracePeriod)
		opts.GracePeriodSeconds = &g
	}
	failed := false
	type pending struct {
		victim
		uid types.UID
	}
	var gone []pending
	for _, v := range victims {
		rc := resourceClient(dyn, v.mapping, v.ns)
		cur, err := rc.Get(ctx, v.name, metav1.GetOptions{})
		if err == nil && o.dryRun != "client" {
			err = rc.Delete(ctx, v.name, opts)
		}
		if err != nil {
			if apierrors.IsNotFound(err) && o.ignoreNotFound {
				continue
			}
			fmt.Fprintln(s.ErrOut, "Error from server ("+string(apierrors.ReasonForError(err))+"): "+errorMessage(err))
			failed = true
			continue
		}
		fmt.Fprintf(s.Out, "%s \"%s\" deleted%s\n", mappingName(v.mapping), v.name, dryRunSuffix(o.dryRun))
		gone = append(gone, pending{victim: v, uid: cur.GetUID()})
	}
	if o.wait && o.dryRun == "none" && len(gone) > 0 {
		timeout := o.timeout
		if timeout == 0 {
			timeout = 5 * time.Minute
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		for _, p := range gone {
			if err := waitGone(wctx, dyn, p.mapping, p.ns, p.name, p.uid); err != nil {
				return fmt.Errorf("timed out waiting for %s \"%s\" to be deleted: %w", mappingName(p.mapping), p.name, err)
			}
		}
	}
	if failed {
		return exitCode(1)
	}
	return nil
}

// waitGone polls until the object with uid is gone (a new object of the
// same name counts as gone).
func waitGone(ctx context.Context, dyn dynamic.Interface, m *meta.RESTMapping, ns, name string, uid types.UID) error {
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		cur, err := resourceClient(dyn, m, ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return cur.GetUID() != uid, nil
	})
}
