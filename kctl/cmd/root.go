// Package cmd holds kctl's commands. Each command is built by a function
// that takes the shared Factory and Streams, so tests run them in-process
// against a real apiserver and read what they print.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubeish/kubeish/pkg/client"
)

// Streams are where a command reads and writes.
type Streams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// Factory builds the clients every command needs from the connection
// flags, once, on first use.
type Factory struct {
	Client    *client.Options
	Namespace string

	cfg     *rest.Config
	cs      kubernetes.Interface
	dyn     dynamic.Interface
	disc    discovery.CachedDiscoveryInterface
	mapper  meta.RESTMapper
	initErr error
	done    bool
}

func (f *Factory) init() error {
	if f.done {
		return f.initErr
	}
	f.done = true
	cfg, err := f.Client.Config()
	if err != nil {
		f.initErr = err
		return err
	}
	// kctl prints the server's warnings itself, once, on stderr.
	f.cfg = cfg
	if f.cs, err = kubernetes.NewForConfig(cfg); err == nil {
		f.dyn, err = dynamic.NewForConfig(cfg)
	}
	if err != nil {
		f.initErr = err
		return err
	}
	f.disc = memory.NewMemCacheClient(f.cs.Discovery())
	f.mapper = restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(f.disc), f.disc, nil)
	return nil
}

// Clientset returns the typed client.
func (f *Factory) Clientset() (kubernetes.Interface, error) { return f.cs, f.init() }

// Dynamic returns the dynamic client.
func (f *Factory) Dynamic() (dynamic.Interface, error) { return f.dyn, f.init() }

// Mapper returns the discovery-backed REST mapper (short names included).
func (f *Factory) Mapper() (meta.RESTMapper, error) { return f.mapper, f.init() }

// REST returns a REST client rooted at the server, for raw paths.
func (f *Factory) REST() (rest.Interface, error) {
	if err := f.init(); err != nil {
		return nil, err
	}
	return f.cs.Discovery().RESTClient(), nil
}

// Discovery returns the cached discovery client.
func (f *Factory) Discovery() (discovery.CachedDiscoveryInterface, error) { return f.disc, f.init() }

// DefaultNamespace is -n, else the kubeconfig context's namespace, else
// "default".
func (f *Factory) DefaultNamespace() string {
	if f.Namespace != "" {
		return f.Namespace
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if f.Client.Kubeconfig != "" {
		rules.ExplicitPath = f.Client.Kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: f.Client.Context})
	if ns, _, err := cc.Namespace(); err == nil && ns != "" {
		return ns
	}
	return "default"
}

// ResourceFor maps what a user typed (pods, po, deploy, deployment.apps,
// Deployment) to its resource mapping.
func (f *Factory) ResourceFor(arg string) (*meta.RESTMapping, error) {
	mapper, err := f.Mapper()
	if err != nil {
		return nil, err
	}
	gvr, err := mapper.ResourceFor(schema.ParseGroupResource(strings.ToLower(arg)).WithVersion(""))
	if err != nil {
		if meta.IsNoMatchError(err) {
			return nil, fmt.Errorf("the server doesn't have a resource type %q", arg)
		}
		return nil, err
	}
	gvk, err := mapper.KindFor(gvr)
	if err != nil {
		return nil, err
	}
	return mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
}

// MappingForKind maps a manifest's apiVersion and kind.
func (f *Factory) MappingForKind(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	mapper, err := f.Mapper()
	if err != nil {
		return nil, err
	}
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		return nil, fmt.Errorf("no kind %q is served in version %q", gvk.Kind, gvk.GroupVersion())
	}
	return m, err
}

// NewRootCommand returns kctl with all its commands.
func NewRootCommand(ctx context.Context, s Streams) *cobra.Command {
	f := &Factory{Client: client.NewOptions("kctl")}
	root := &cobra.Command{
		Use:           "kctl",
		Short:         "kctl talks to a kubeish (or any Kubernetes) apiserver",
		Long:          "kctl talks to a kubeish (or any Kubernetes) apiserver: apply manifests, get, describe, delete, logs, scale and roll out.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetContext(ctx)
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	f.Client.AddFlags(root.PersistentFlags())
	root.PersistentFlags().StringVarP(&f.Namespace, "namespace", "n", "", "namespace of the request (default: the kubeconfig context's, else default)")
	root.AddCommand(
		newApplyCommand(f, s),
		newCreateCommand(f, s),
		newGetCommand(f, s),
		newDescribeCommand(f, s),
		newDeleteCommand(f, s),
		newLogsCommand(f, s),
		newScaleCommand(f, s),
		newAutoscaleCommand(f, s),
		newTopCommand(f, s),
		newRolloutCommand(f, s),
		newDiffCommand(f, s),
		newAPIResourcesCommand(f, s),
		newVersionCommand(f, s),
		newImageCommand(f, s),
		newPKICommand(s),
	)
	return root
}

// Execute runs kctl with args and returns its exit code, printing any
// error on one line.
func Execute(ctx context.Context, s Streams, args []string) int {
	root := NewRootCommand(ctx, s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ec exitCode
	if errors.As(err, &ec) {
		return int(ec)
	}
	fmt.Fprintln(s.ErrOut, "error: "+errorMessage(err))
	return 1
}

// exitCode ends a command with a code and no message (diff's 1).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit code %d", int(e)) }

// errorMessage is err on one line, with the API's message for API errors.
func errorMessage(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Message != "" {
		return strings.ReplaceAll(se.Status().Message, "\n", " ")
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}
