package cmd

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubeish/kubeish/pkg/pki"
)

// newPKICommand is the cluster CA's tooling: it runs where the CA's key is
// (the control-plane machine) and writes files to copy to where they are
// used. It never talks to the apiserver.
func newPKICommand(s Streams) *cobra.Command {
	var caDir string
	c := &cobra.Command{
		Use:   "pki",
		Short: "Make the cluster CA and issue certificates and kubeconfigs signed by it",
		Long: `pki makes the cluster CA and issues certificates and kubeconfigs signed by it.

The CA lives in --ca-dir as ca.crt and ca.key (the apiserver's --cert-dir;
the apiserver makes one there on first start). A client certificate's common
name is the user and its organizations are the user's groups, as in
Kubernetes: --group system:masters makes a cluster admin.`,
	}
	c.PersistentFlags().StringVar(&caDir, "ca-dir", "/var/lib/kubeish/apiserver/pki", "folder of the cluster CA (ca.crt, ca.key)")
	c.AddCommand(newPKIInitCommand(s, &caDir), newPKIKubeconfigCommand(s, &caDir), newPKINodeCommand(s, &caDir), newPKITokenCommand(s))
	return c
}

func newPKIInitCommand(s Streams, caDir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Make the cluster CA in --ca-dir unless it exists",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			_, created, err := pki.LoadOrCreateCA(*caDir, "kubeish-ca")
			if err != nil {
				return err
			}
			if created {
				fmt.Fprintf(s.Out, "made a CA in %s\n", *caDir)
			} else {
				fmt.Fprintf(s.Out, "%s already holds a CA; kept it\n", *caDir)
			}
			return nil
		},
	}
}

func newPKIKubeconfigCommand(s Streams, caDir *string) *cobra.Command {
	var (
		user, server, out, name string
		groups                  []string
		validity                time.Duration
	)
	c := &cobra.Command{
		Use:   "kubeconfig --user NAME [--group GROUP]... --server URL",
		Short: "Issue a client certificate and print (or write) a kubeconfig that uses it",
		Example: `  kctl pki kubeconfig --user alice --group dev --server https://10.0.0.1:6443 > alice.kubeconfig
  kctl pki kubeconfig --user system:kube-scheduler --server https://10.0.0.1:6443 -o scheduler.kubeconfig`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if user == "" || server == "" {
				return fmt.Errorf("--user and --server are required")
			}
			ca, err := loadCA(*caDir)
			if err != nil {
				return err
			}
			pair, err := ca.Issue(pki.Spec{CommonName: user, Organizations: groups, Usage: pki.Client, Validity: validity})
			if err != nil {
				return err
			}
			data, err := pki.Kubeconfig(name, server, ca.CertPEM, pki.Credentials{Pair: pair})
			if err != nil {
				return err
			}
			return writeOut(s, out, data)
		},
	}
	c.Flags().StringVar(&user, "user", "", "user name (the certificate's common name)")
	c.Flags().StringSliceVar(&groups, "group", nil, "group of the user (repeatable; the certificate's organizations)")
	c.Flags().StringVar(&server, "server", "", "apiserver URL the kubeconfig points at, e.g. https://10.0.0.1:6443")
	c.Flags().StringVar(&name, "name", "kubeish", "name of the kubeconfig's cluster, user and context")
	c.Flags().DurationVar(&validity, "validity", pki.LeafValidity, "how long the certificate is valid")
	c.Flags().StringVarP(&out, "output", "o", "", "file to write (mode 0600) instead of standard output")
	return c
}

func newPKINodeCommand(s Streams, caDir *string) *cobra.Command {
	var (
		ips           []string
		server, out   string
		validity      time.Duration
		extraDNSNames []string
	)
	c := &cobra.Command{
		Use:   "node NAME --ip IP --server URL -o DIR",
		Short: "Issue a node agent's credentials: its kubeconfig (system:node:NAME) and its serving certificate",
		Long: `node writes what one node agent needs into a folder, to copy to that machine:

  DIR/kubeconfig   user system:node:NAME in group system:nodes (--kubeconfig)
  DIR/kubelet.crt  serving certificate for NAME and its IPs   (--tls-cert-file)
  DIR/kubelet.key                                              (--tls-private-key-file)
  DIR/ca.crt       the cluster CA                              (--client-ca-file)`,
		Example: `  kctl pki node node-4 --ip 10.0.0.4 --server https://10.0.0.1:6443 -o /tmp/node-4`,
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			node := args[0]
			if server == "" || out == "" || len(ips) == 0 {
				return fmt.Errorf("--ip, --server and -o are required")
			}
			var addrs []net.IP
			for _, s := range ips {
				ip := net.ParseIP(s)
				if ip == nil {
					return fmt.Errorf("--ip %q is not an IP address", s)
				}
				addrs = append(addrs, ip)
			}
			ca, err := loadCA(*caDir)
			if err != nil {
				return err
			}
			client, err := ca.Issue(pki.Spec{CommonName: pki.NodeUserPrefix + node, Organizations: []string{pki.NodesGroup}, Usage: pki.Client, Validity: validity})
			if err != nil {
				return err
			}
			kubeconfig, err := pki.Kubeconfig("kubeish", server, ca.CertPEM, pki.Credentials{Pair: client})
			if err != nil {
				return err
			}
			serving, err := ca.Issue(pki.Spec{CommonName: node, DNSNames: append([]string{node}, extraDNSNames...), IPs: addrs, Usage: pki.Server, Validity: validity})
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(out, "kubeconfig"), kubeconfig, 0o600); err != nil {
				return err
			}
			if err := serving.Write(filepath.Join(out, "kubelet.crt"), filepath.Join(out, "kubelet.key")); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(out, pki.CACertFile), ca.CertPEM, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "wrote %s: kubeconfig, kubelet.crt, kubelet.key, ca.crt for node %s\n", out, node)
			return nil
		},
	}
	c.Flags().StringSliceVar(&ips, "ip", nil, "the node's IP address(es) (its --node-ip; repeatable)")
	c.Flags().StringSliceVar(&extraDNSNames, "dns-name", nil, "more DNS names for the serving certificate (repeatable)")
	c.Flags().StringVar(&server, "server", "", "apiserver URL the node's kubeconfig points at")
	c.Flags().DurationVar(&validity, "validity", pki.LeafValidity, "how long the certificates are valid")
	c.Flags().StringVarP(&out, "output", "o", "", "folder to write the files into")
	return c
}

func newPKITokenCommand(s Streams) *cobra.Command {
	var groups []string
	c := &cobra.Command{
		Use:   "token USER [--group GROUP]...",
		Short: "Print a new random bearer token as a line of the apiserver's --token-auth-file",
		Example: `  kctl pki token alice --group dev >> /var/lib/kubeish/tokens.csv   # then restart the apiserver
  curl -H "Authorization: Bearer <the first field>" ...`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			b := make([]byte, 24)
			if _, err := rand.Read(b); err != nil {
				return err
			}
			line := fmt.Sprintf("%s,%s,%s", hex.EncodeToString(b), args[0], args[0])
			if len(groups) > 0 {
				line += fmt.Sprintf(",%q", strings.Join(groups, ","))
			}
			fmt.Fprintln(s.Out, line)
			return nil
		},
	}
	c.Flags().StringSliceVar(&groups, "group", nil, "group of the user (repeatable)")
	return c
}

func loadCA(dir string) (*pki.CA, error) {
	ca, err := pki.LoadCA(filepath.Join(dir, pki.CACertFile), filepath.Join(dir, pki.CAKeyFile))
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("no CA in %s (run `kctl pki init --ca-dir %s`, or point --ca-dir at the apiserver's --cert-dir)", dir, dir)
	}
	return ca, err
}

func writeOut(s Streams, file string, data []byte) error {
	if file == "" {
		_, err := s.Out.Write(data)
		return err
	}
	return os.WriteFile(file, data, 0o600)
}
