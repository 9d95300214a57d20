// Package client builds client-go configurations and clientsets from the
// connection flags every kubeish binary shares: --kubeconfig (client-go's
// loading rules, so $KUBECONFIG and ~/.kube/config work too), --context and
// --server. It is a set-up helper on client-go, not a second client.
package client

import (
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Options are the connection flags.
type Options struct {
	Kubeconfig string
	Context    string
	Server     string
	// QPS and Burst bound the client's request rate; QPS < 0 disables the
	// limiter.
	QPS   float32
	Burst int
	// UserAgent is sent with every request, e.g. "kubeish-controller".
	UserAgent string
}

// NewOptions returns options with client-go's default rate limits raised
// to what a control-plane component needs.
func NewOptions(userAgent string) *Options {
	return &Options{QPS: 100, Burst: 200, UserAgent: userAgent}
}

// AddFlags registers --kubeconfig, --context, --server, --kube-api-qps and
// --kube-api-burst on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "path to a kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&o.Context, "context", o.Context, "kubeconfig context to use")
	fs.StringVarP(&o.Server, "server", "s", o.Server, "address of the apiserver, overriding the kubeconfig (e.g. http://127.0.0.1:6443)")
	fs.Float32Var(&o.QPS, "kube-api-qps", o.QPS, "requests per second to the apiserver (negative: unlimited)")
	fs.IntVar(&o.Burst, "kube-api-burst", o.Burst, "burst of requests to the apiserver")
}

// Config returns the rest.Config the flags describe. With neither a
// kubeconfig nor --server it fails with a message that says what to pass.
func (o *Options) Config() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.Kubeconfig != "" {
		rules.ExplicitPath = o.Kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.Context}
	if o.Server != "" {
		overrides.ClusterInfo.Server = o.Server
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, fmt.Errorf("no apiserver to talk to: pass --server http://127.0.0.1:6443 or --kubeconfig, or run `make up`, which writes one")
		}
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = o.QPS, o.Burst
	if o.UserAgent != "" {
		cfg.UserAgent = o.UserAgent
	}
	return cfg, nil
}

// Clientset returns the config and a typed clientset for it.
func (o *Options) Clientset() (*rest.Config, kubernetes.Interface, error) {
	cfg, err := o.Config()
	if err != nil {
		return nil, nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, cs, nil
}
