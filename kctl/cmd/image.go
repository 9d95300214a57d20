package cmd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kubeish/kubeish/pkg/image"
)

// imageBuildOptions are `kctl image build`'s flags.
type imageBuildOptions struct {
	tag, output, entrypoint, workdir, arch string
	env, ports                             []string
}

// newImageCommand needs no apiserver: images are built locally.
func newImageCommand(_ *Factory, s Streams) *cobra.Command {
	c := &cobra.Command{
		Use:   "image",
		Short: "Build container images without a registry or Docker",
	}
	c.AddCommand(newImageBuildCommand(s))
	return c
}

func newImageBuildCommand(s Streams) *cobra.Command {
	o := &imageBuildOptions{}
	c := &cobra.Command{
		Use:   "build DIR|BINARY -t NAME:TAG -o FILE [--entrypoint PATH] [-- ARG...]",
		Short: "Build a single-layer OCI image archive from a static binary or a folder",
		Long: `Build a single-layer OCI image archive (an OCI layout in a tar) from a static binary,
which becomes /<its name> and the entrypoint, or from a folder, which becomes the image's
root and needs --entrypoint. Arguments after -- are the image's default arguments (cmd).
Import the archive on a node with 'kubeletish images import FILE'.

The tag must be explicit and not :latest: Kubernetes pulls :latest images on every start
(imagePullPolicy Always), from a registry, which an imported image is not in.`,
		Example: `  kctl image build ./bin/echo -t kubeish.local/echo:v1 -o echo.tar
  kctl image build ./site -t kubeish.local/site:v2 -o site.tar --entrypoint /server -- --root=/www`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			src, cmdArgs := args[0], args[1:]
			// Exactly one source before --; anything after it is the cmd.
			if dash := c.ArgsLenAtDash(); (dash >= 0 && dash != 1) || (dash < 0 && len(args) > 1) {
				return errors.New("build takes one DIR or BINARY; put the image's arguments after --")
			}
			return o.run(s, src, cmdArgs)
		},
	}
	fl := c.Flags()
	fl.StringVarP(&o.tag, "tag", "t", "", "image name with an explicit tag, NAME:TAG (required; not :latest)")
	fl.StringVarP(&o.output, "output", "o", "", "archive file to write (required)")
	fl.StringVar(&o.entrypoint, "entrypoint", "", "program in the image to run (default for a binary: /<its name>; required for a folder)")
	fl.StringVar(&o.workdir, "workdir", "", "working directory of the image's process (default /)")
	fl.StringArrayVar(&o.env, "env", nil, "KEY=VALUE in the image's environment (repeatable)")
	fl.StringSliceVar(&o.ports, "port", nil, "ports the image exposes, e.g. 8080/tcp (repeatable)")
	fl.StringVar(&o.arch, "arch", "", "architecture recorded in the image (default: the binary's, or this machine's for a folder)")
	return c
}

func (o *imageBuildOptions) run(s Streams, src string, cmdArgs []string) error {
	spec := image.Spec{Ref: o.tag, Env: o.env, WorkingDir: o.workdir, ExposedPorts: o.ports}
	if len(cmdArgs) > 0 {
		spec.Cmd = cmdArgs // else none at all, not an empty list
	}
	// The reference is checked first: a wrong tag is the likeliest mistake
	// and costs nothing to report.
	if o.tag == "" {
		return errors.New("an image name is required: -t NAME:TAG (an explicit tag, not :latest)")
	}
	if name, tag := image.SplitRef(o.tag); name == "" || tag == "" {
		return fmt.Errorf("image name %q has no tag: use -t NAME:TAG with an explicit tag (not :latest, which means pull Always)", o.tag)
	}
	if err := (image.Spec{Ref: o.tag, Dir: "."}).Validate(); err != nil {
		return err
	}
	if o.output == "" {
		return errors.New("an output file is required: -o FILE")
	}
	for i, p := range spec.ExposedPorts {
		if !strings.Contains(p, "/") {
			spec.ExposedPorts[i] = p + "/tcp"
		}
	}
	info, err := os.Stat(src)
	if err != nil {
		return err
	}
	arch := o.arch
	if info.IsDir() {
		if o.entrypoint == "" {
			return fmt.Errorf("%s is a folder: say which program in it runs with --entrypoint /PATH", src)
		}
		spec.Dir = src
		if arch == "" {
			arch = goruntime.GOARCH
		}
	} else {
		binArch, err := image.StaticBinaryArch(src)
		if err != nil {
			return err
		}
		if arch == "" {
			arch = binArch
		}
		dst := "/" + filepath.Base(src)
		spec.Files = map[string]string{dst: src}
		if o.entrypoint == "" {
			o.entrypoint = dst
		}
	}
	spec.Entrypoint = []string{o.entrypoint}
	if err := image.BuildFile(spec, arch, o.output); err != nil {
		return err
	}
	fmt.Fprintf(s.Out, "built %s (linux/%s) into %s\n", o.tag, arch, o.output)
	return nil
}
