package cmd

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newVersionCommand(f *Factory, s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kctl's version and the server's",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			client := "(devel)"
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
				client = bi.Main.Version
			}
			fmt.Fprintf(s.Out, "Client Version: %s\n", client)
			d, err := f.Discovery()
			if err != nil {
				return err
			}
			v, err := d.ServerVersion()
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "Server Version: %s\n", v.GitVersion)
			return nil
		},
	}
}
