package cmd

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/jsonmergepatch"
	"k8s.io/apimachinery/pkg/util/mergepatch"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/kubernetes/scheme"
)

// lastApplied is the annotation kubectl's client-side apply keeps the
// applied manifest in; kctl uses the same, so the two tools interoperate.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

type applyOptions struct {
	files  []string
	dryRun string
	output string
}

func dryRunFlag(c *cobra.Command, v *string) {
	c.Flags().StringVar(v, "dry-run", "none", `"client": only print what would be sent; "server": the server checks and defaults it but stores nothing; "none"`)
	c.Flags().Lookup("dry-run").NoOptDefVal = "client"
}

func checkDryRun(v string) error {
	switch v {
	case "none", "client", "server":
		return nil
	}
	return fmt.Errorf(`--dry-run must be "none", "client" or "server", not %q`, v)
}

func dryRunSuffix(v string) string {
	switch v {
	case "client":
		return " (dry run)"
	case "server":
		return " (server dry run)"
	}
	return ""
}

func dryRunOpt(v string) []string {
	if v == "server" {
		return []string{metav1.DryRunAll}
	}
	return nil
}

func newApplyCommand(f *Factory, s Streams) *cobra.Command {
	o := &applyOptions{}
	c := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update objects from manifests, keeping what others changed",
		Long: `Create each object in the manifests, or patch it towards the manifest if it exists.
Like kubectl's client-side apply, the applied manifest is kept in the
kubectl.kubernetes.io/last-applied-configuration annotation, and a three-way
strategic merge patch changes only what the manifest changed: fields and list
items set by others (a container added by hand, replicas set by an autoscaler
when the manifest has none) stay.`,
		Example: "  kctl apply -f manifests/deployment.yaml\n  kctl apply -f manifests/\n  cat app.yaml | kctl apply -f -",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runApply(c.Context(), f, s, o)
		},
	}
	c.Flags().StringSliceVarP(&o.files, "filename", "f", nil, "manifest file, directory or - for stdin (repeatable)")
	c.Flags().StringVarP(&o.output, "output", "o", "", "print the applied objects as yaml, json or name instead of a line each")
	dryRunFlag(c, &o.dryRun)
	return c
}

func runApply(ctx context.Context, f *Factory, s Streams, o *applyOptions) error {
	if err := checkDryRun(o.dryRun); err != nil {
		return err
	}
	objs, err := readManifests(o.files, s.In, s.ErrOut)
	if err != nil {
		return err
	}
	failed := false
	for _, obj := range objs {
		result, applied, err := applyOne(ctx, f, obj, o.dryRun)
		if err != nil {
			fmt.Fprintf(s.ErrOut, "error: %s: %s\n", objectName(obj), errorMessage(err))
			failed = true
			continue
		}
		if o.output != "" {
			if err := printObject(s.Out, o.output, applied); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(s.Out, "%s %s%s\n", objectName(obj), result, dryRunSuffix(o.dryRun))
	}
	if failed {
		return exitCode(1)
	}
	return nil
}

// applyOne creates or patches obj; it returns created, configured or
// unchanged and the object as the server has it (or would have it).
func applyOne(ctx context.Context, f *Factory, obj *unstructured.Unstructured, dryRun string) (string, *unstructured.Unstructured, error) {
	m, err := f.MappingForKind(obj.GroupVersionKind())
	if err != nil {
		return "", nil, err
	}
	dyn, err := f.Dynamic()
	if err != nil {
		return "", nil, err
	}
	ns := setNamespace(f, m, obj)
	rc := resourceClient(dyn, m, ns)
	modified, err := withLastApplied(obj)
	if err != nil {
		return "", nil, err
	}
	cur, err := rc.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if dryRun == "client" {
			return "created", obj, nil
		}
		created, err := rc.Create(ctx, obj, metav1.CreateOptions{DryRun: dryRunOpt(dryRun), FieldValidation: "Strict"})
		if err != nil {
			return "", nil, err
		}
		return "created", created, nil
	}
	if err != nil {
		return "", nil, err
	}
	patch, pt, err := applyPatch(m, cur, modified)
	if err != nil {
		return "", nil, err
	}
	if string(patch) == "{}" {
		return "unchanged", cur, nil
	}
	if dryRun == "client" {
		return "configured", cur, nil
	}
	out, err := rc.Patch(ctx, obj.GetName(), pt, patch, metav1.PatchOptions{DryRun: dryRunOpt(dryRun), FieldValidation: "Strict"})
	if err != nil {
		return "", nil, err
	}
	return "configured", out, nil
}

// setNamespace fills in the manifest's namespace from -n (or the default)
// and returns it; a cluster-scoped kind has none.
func setNamespace(f *Factory, m *meta.RESTMapping, obj *unstructured.Unstructured) string {
	if !namespaced(m) {
		return ""
	}
	if obj.GetNamespace() == "" {
		obj.SetNamespace(f.DefaultNamespace())
	}
	return obj.GetNamespace()
}

// withLastApplied returns obj's JSON with the last-applied annotation set
// to obj itself (without that annotation), as kubectl writes it.
func withLastApplied(obj *unstructured.Unstructured) ([]byte, error) {
	ann := obj.GetAnnotations()
	delete(ann, lastApplied)
	if len(ann) == 0 {
		ann = nil
	}
	obj.SetAnnotations(ann)
	original, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, err
	}
	if ann == nil {
		ann = map[string]string{}
	}
	ann[lastApplied] = string(original) + "\n"
	obj.SetAnnotations(ann)
	return json.Marshal(obj.Object)
}

// applyPatch computes the three-way patch from the last applied manifest,
// the new one and the live object: strategic merge for built-in kinds
// (merge keys keep list items others added), JSON merge otherwise.
func applyPatch(m *meta.RESTMapping, cur *unstructured.Unstructured, modified []byte) ([]byte, types.PatchType, error) {
	current, err := json.Marshal(cur.Object)
	if err != nil {
		return nil, "", err
	}
	original := []byte(cur.GetAnnotations()[lastApplied])
	if typed, err := scheme.Scheme.New(m.GroupVersionKind); err == nil {
		lookup, err := strategicpatch.NewPatchMetaFromStruct(typed)
		if err != nil {
			return nil, "", err
		}
		patch, err := strategicpatch.CreateThreeWayMergePatch(original, modified, current, lookup, true)
		if err != nil {
			return nil, "", fmt.Errorf("computing the patch: %w", err)
		}
		return patch, types.StrategicMergePatchType, nil
	}
	preconditions := []mergepatch.PreconditionFunc{mergepatch.RequireKeyUnchanged("apiVersion"),
		mergepatch.RequireKeyUnchanged("kind"), mergepatch.RequireMetadataKeyUnchanged("name")}
	patch, err := jsonmergepatch.CreateThreeWayJSONMergePatch(original, modified, current, preconditions...)
	if err != nil {
		return nil, "", fmt.Errorf("computing the patch: %w", err)
	}
	return patch, types.MergePatchType, nil
}

type createOptions struct {
	files  []string
	dryRun string
	output string
}

func newCreateCommand(f *Factory, s Streams) *cobra.Command {
	o := &createOptions{}
	c := &cobra.Command{
		Use:     "create -f FILE|DIR|-",
		Short:   "Create objects from manifests; an existing one is an error",
		Example: "  kctl create -f manifests/configmap.yaml",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkDryRun(o.dryRun); err != nil {
				return err
			}
			objs, err := readManifests(o.files, s.In, s.ErrOut)
			if err != nil {
				return err
			}
			dyn, err := f.Dynamic()
			if err != nil {
				return err
			}
			failed := false
			for _, obj := range objs {
				created, err := func() (*unstructured.Unstructured, error) {
					m, err := f.MappingForKind(obj.GroupVersionKind())
					if err != nil {
						return nil, err
					}
					ns := setNamespace(f, m, obj)
					if o.dryRun == "client" {
						return obj, nil
					}
					return resourceClient(dyn, m, ns).Create(c.Context(), obj, metav1.CreateOptions{DryRun: dryRunOpt(o.dryRun), FieldValidation: "Strict"})
				}()
				if err != nil {
					fmt.Fprintln(s.ErrOut, "error: "+errorMessage(err))
					failed = true
					continue
				}
				if o.output != "" {
					if err := printObject(s.Out, o.output, created); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(s.Out, "%s created%s\n", objectName(created), dryRunSuffix(o.dryRun))
			}
			if failed {
				return exitCode(1)
			}
			return nil
		},
	}
	c.Flags().StringSliceVarP(&o.files, "filename", "f", nil, "manifest file, directory or - for stdin (repeatable)")
	c.Flags().StringVarP(&o.output, "output", "o", "", "print the created objects as yaml, json or name")
	dryRunFlag(c, &o.dryRun)
	return c
}
