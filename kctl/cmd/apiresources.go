package cmd

import (
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func newAPIResourcesCommand(f *Factory, s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "api-resources",
		Short: "List the kinds the server serves, with short names",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			d, err := f.Discovery()
			if err != nil {
				return err
			}
			_, lists, err := d.ServerGroupsAndResources()
			if err != nil {
				return err
			}
			type row struct{ name, short, version, namespaced, kind, group string }
			var rows []row
			for _, l := range lists {
				gv, _ := schema.ParseGroupVersion(l.GroupVersion)
				for _, r := range l.APIResources {
					if strings.Contains(r.Name, "/") {
						continue
					}
					rows = append(rows, row{r.Name, strings.Join(r.ShortNames, ","), l.GroupVersion, fmt.Sprint(r.Namespaced), r.Kind, gv.Group})
				}
			}
			sort.Slice(rows, func(i, j int) bool {
				if rows[i].group != rows[j].group {
					return rows[i].group < rows[j].group
				}
				return rows[i].name < rows[j].name
			})
			w := tabwriter.NewWriter(s.Out, 6, 4, 3, ' ', 0)
			fmt.Fprintln(w, "NAME\tSHORTNAMES\tAPIVERSION\tNAMESPACED\tKIND")
			for _, r := range rows {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.name, r.short, r.version, r.namespaced, r.kind)
			}
			return w.Flush()
		},
	}
}
