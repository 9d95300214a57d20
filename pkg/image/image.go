// Package image builds single-layer OCI image archives (an OCI image layout
// in a tar, as `ctr images import` and containerd's client Import read)
// from a static binary or a folder, so that tests and `make up` need no
// registry and no Docker.
package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Spec describes the image to build.
type Spec struct {
	// Ref is the full name with an explicit tag, e.g. "kubeish.local/echo:v1".
	Ref string
	// Files maps a path inside the image (e.g. "/echo") to a file on disk.
	Files map[string]string
	// Dir, when set, is copied to the image's root as well.
	Dir string
	// Entrypoint and Cmd of the image config.
	Entrypoint []string
	Cmd        []string
	// Env of the image config, KEY=VALUE.
	Env []string
	// WorkingDir of the image config.
	WorkingDir string
	// ExposedPorts like "8080/tcp".
	ExposedPorts []string
}

// Validate checks the reference has an explicit, non-latest tag.
func (s Spec) Validate() error {
	name, tag := SplitRef(s.Ref)
	if name == "" || tag == "" {
		return fmt.Errorf("image reference %q needs an explicit tag (name:tag)", s.Ref)
	}
	if tag == "latest" {
		return fmt.Errorf("image reference %q: :latest means imagePullPolicy Always, a pull from the registry on every start; tag it explicitly (e.g. name:v1)", s.Ref)
	}
	if len(s.Files) == 0 && s.Dir == "" {
		return fmt.Errorf("image %q has no files", s.Ref)
	}
	return nil
}

// SplitRef splits "host/name:tag" into name and tag ("" when untagged).
func SplitRef(ref string) (name, tag string) {
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ref, ""
	}
	return ref[:i], ref[i+1:]
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
)

// epoch makes builds reproducible: the same inputs give the same digests.
var epoch = time.Unix(0, 0).UTC()

// Build writes the OCI archive of s to w.
func Build(s Spec, arch string, w io.Writer) error {
	if err := s.Validate(); err != nil {
		return err
	}
	layer, diffID, err := buildLayer(s)
	if err != nil {
		return err
	}
	exposed := map[string]struct{}{}
	for _, p := range s.ExposedPorts {
		exposed[p] = struct{}{}
	}
	cfg := map[string]any{
		"architecture": arch,
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config": map[string]any{
			"Entrypoint":   s.Entrypoint,
			"Cmd":          s.Cmd,
			"Env":          s.Env,
			"WorkingDir":   s.WorkingDir,
			"ExposedPorts": exposed,
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	}
	cfgBytes, _ := json.Marshal(cfg)
	cfgDesc := desc(mediaConfig, cfgBytes)
	layerDesc := desc(mediaLayer, layer)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaManifest,
		"config":        cfgDesc,
		"layers":        []descriptor{layerDesc},
	})
	mDesc := desc(mediaManifest, manifest)
	_, tag := SplitRef(s.Ref)
	mDesc.Annotations = map[string]string{
		// containerd names the image after this one; other tools read the OCI tag.
		"io.containerd.image.name":          s.Ref,
		"org.opencontainers.image.ref.name": tag,
	}
	mDesc.Platform = &platform{Architecture: arch, OS: "linux"}
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaIndex,
		"manifests":     []descriptor{mDesc},
	})

	tw := tar.NewWriter(w)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{blobPath(cfgDesc.Digest), cfgBytes},
		{blobPath(layerDesc.Digest), layer},
		{blobPath(mDesc.Digest), manifest},
	} {
		if err := add(f.name, f.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// BuildFile writes the archive to path.
func BuildFile(s Spec, arch, file string) error {
	var buf bytes.Buffer
	if err := Build(s, arch, &buf); err != nil {
		return err
	}
	return os.WriteFile(file, buf.Bytes(), 0o644)
}

func blobPath(digest string) string { return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:") }

func desc(mt string, data []byte) descriptor {
	return descriptor{MediaType: mt, Digest: fmt.Sprintf("sha256:%x", sha256.Sum256(data)), Size: int64(len(data))}
}

// buildLayer returns the gzipped layer tar and the digest of the
// uncompressed tar (the config's diff_id).
func buildLayer(s Spec) ([]byte, string, error) {
	type entry struct {
		name string
		src  string
		dir  bool
		mode fs.FileMode
	}
	entries := map[string]entry{}
	addParents := func(p string) {
		for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = entry{name: d, dir: true, mode: 0o755}
			}
		}
	}
	if s.Dir != "" {
		err := filepath.WalkDir(s.Dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(s.Dir, p)
			if rel == "." {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if !info.Mode().IsRegular() && !info.IsDir() {
				return fmt.Errorf("%s: only regular files and folders go into an image", p)
			}
			name := "/" + filepath.ToSlash(rel)
			entries[name] = entry{name: name, src: p, dir: info.IsDir(), mode: info.Mode().Perm()}
			return nil
		})
		if err != nil {
			return nil, "", err
		}
	}
	for dst, src := range s.Files {
		info, err := os.Stat(src)
		if err != nil {
			return nil, "", err
		}
		dst = path.Clean("/" + dst)
		entries[dst] = entry{name: dst, src: src, mode: info.Mode().Perm()}
		addParents(dst)
	}
	// Every image gets the mount points a container expects.
	for _, d := range []string{"/etc", "/tmp", "/proc", "/sys", "/dev"} {
		if _, ok := entries[d]; !ok {
			entries[d] = entry{name: d, dir: true, mode: 0o755}
		}
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)

	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, n := range names {
		e := entries[n]
		h := &tar.Header{Name: strings.TrimPrefix(n, "/"), Mode: int64(e.mode), ModTime: epoch, Uname: "root", Gname: "root"}
		if n == "/tmp" {
			h.Mode = 0o1777
		}
		if e.dir {
			h.Typeflag = tar.TypeDir
			h.Name += "/"
			if err := tw.WriteHeader(h); err != nil {
				return nil, "", err
			}
			continue
		}
		data, err := os.ReadFile(e.src)
		if err != nil {
			return nil, "", err
		}
		h.Typeflag = tar.TypeReg
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return nil, "", err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	diffID := fmt.Sprintf("sha256:%x", sha256.Sum256(raw.Bytes()))
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), diffID, nil
}

// BuildGoBinary compiles the Go package pkg (an import path or ./dir,
// resolved in dir) into a static binary at out, as images need it: no cgo,
// no dynamic loader.
func BuildGoBinary(dir, pkg, out string) error {
	cmd := exec.Command(goTool(), "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// StaticBinaryArch checks that file is a statically linked Linux ELF
// executable (an image built from it has no dynamic loader and no libc)
// and returns its architecture in OCI terms (amd64, arm64, …).
func StaticBinaryArch(file string) (string, error) {
	f, err := elf.Open(file)
	if err != nil {
		var fe *elf.FormatError
		if errors.As(err, &fe) {
			return "", fmt.Errorf("%s is not an ELF executable: an image from a single file needs a static Linux binary", file)
		}
		return "", err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s is dynamically linked: the image has no loader or libc; build it static (Go: CGO_ENABLED=0)", file)
		}
	}
	arch, ok := map[elf.Machine]string{
		elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64", elf.EM_386: "386", elf.EM_ARM: "arm",
		elf.EM_RISCV: "riscv64", elf.EM_PPC64: "ppc64le", elf.EM_S390: "s390x",
	}[f.Machine]
	if !ok {
		return "", fmt.Errorf("%s: unsupported machine %v", file, f.Machine)
	}
	return arch, nil
}
