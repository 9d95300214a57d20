package cmd

import (
	"context"
	"fmt"
	"io"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func newDiffCommand(f *Factory, s Streams) *cobra.Command {
	var files []string
	c := &cobra.Command{
		Use:   "diff -f FILE|DIR|-",
		Short: "Show what apply would change, as a unified diff of live and merged objects",
		Long: `Show what kctl apply would change: for each object, the live object and the
object the server would store after the apply (a server-side dry run) as YAML,
compared as a unified diff. Exit code 0: no differences, 1: differences,
above 1: kctl failed.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			objs, err := readManifests(files, s.In, s.ErrOut)
			if err != nil {
				return err
			}
			differ := false
			for _, obj := range objs {
				d, err := diffOne(c.Context(), f, s.Out, obj)
				if err != nil {
					return fmt.Errorf("%s: %s", objectName(obj), errorMessage(err))
				}
				differ = differ || d
			}
			if differ {
				return exitCode(1)
			}
			return nil
		},
	}
	c.Flags().StringSliceVarP(&files, "filename", "f", nil, "manifest file, directory or - for stdin (repeatable)")
	return c
}

func diffOne(ctx context.Context, f *Factory, out io.Writer, obj *unstructured.Unstructured) (bool, error) {
	m, err := f.MappingForKind(obj.GroupVersionKind())
	if err != nil {
		return false, err
	}
	dyn, err := f.Dynamic()
	if err != nil {
		return false, err
	}
	ns := setNamespace(f, m, obj)
	live, err := resourceClient(dyn, m, ns).Get(ctx, obj.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		live, err = nil, nil
	}
	if err != nil {
		return false, err
	}
	_, merged, err := applyOne(ctx, f, obj.DeepCopy(), "server")
	if err != nil {
		return false, err
	}
	a, b := "", ""
	if live != nil {
		if a, err = diffYAML(live); err != nil {
			return false, err
		}
	}
	if b, err = diffYAML(merged); err != nil {
		return false, err
	}
	if a == b {
		return false, nil
	}
	name := mappingName(m) + "." + ns + "." + obj.GetName()
	text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(a), B: difflib.SplitLines(b),
		FromFile: "live/" + name, ToFile: "merged/" + name, Context: 3,
	})
	if err != nil {
		return false, err
	}
	_, err = io.WriteString(out, text)
	return true, err
}

// diffYAML is an object as YAML without the fields every write changes.
func diffYAML(obj *unstructured.Unstructured) (string, error) {
	obj = obj.DeepCopy()
	unstructured.RemoveNestedField(obj.Object, "metadata", "managedFields")
	unstructured.RemoveNestedField(obj.Object, "metadata", "generation")
	unstructured.RemoveNestedField(obj.Object, "metadata", "resourceVersion")
	data, err := yaml.Marshal(obj.Object)
	return string(data), err
}
