// Command kubectl is the real kubectl, built from the k8s.io/kubectl
// library at the release pinned in this module's go.mod, for the
// compatibility suite.
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		// As kubectl's own main: print the error the way kubectl does and
		// exit non-zero.
		cmdutil.CheckErr(err)
	}
}
