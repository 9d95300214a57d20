package cmd_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kubeish/kubeish/kctl/cmd"
)

// writeELF writes the headers of a Linux ELF executable: enough for the
// static-binary check, with a PT_INTERP (a loader) when dynamic.
func writeELF(t *testing.T, file string, dynamic bool) {
	t.Helper()
	progs := []elf.Prog64{{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Vaddr: 0x400000, Align: 0x1000}}
	if dynamic {
		progs = append([]elf.Prog64{{Type: uint32(elf.PT_INTERP), Flags: uint32(elf.PF_R)}}, progs...)
	}
	h := elf.Header64{
		Ident: [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)},
		Type:  uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT), Entry: 0x400000,
		Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: uint16(len(progs)), Shentsize: 64,
	}
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, h)
	for _, p := range progs {
		_ = binary.Write(&b, binary.LittleEndian, p)
	}
	if err := os.WriteFile(file, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
}

// ociImage is what a test reads back from an archive.
type ociImage struct {
	name, arch      string
	entrypoint, cmd []string
	env, files      []string
	exposedPorts    []string
}

func readArchive(t *testing.T, file string) ociImage {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blobs := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		blobs[h.Name], _ = io.ReadAll(tr)
	}
	blob := func(digest string) []byte { return blobs["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")] }
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	var manifest struct {
		Config struct{ Digest string }
		Layers []struct{ Digest string }
	}
	var config struct {
		Architecture string
		Config       struct {
			Entrypoint, Cmd, Env []string
			ExposedPorts         map[string]struct{}
		}
	}
	if err := json.Unmarshal(blobs["index.json"], &index); err != nil || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v %s", err, blobs["index.json"])
	}
	if err := json.Unmarshal(blob(index.Manifests[0].Digest), &manifest); err != nil || len(manifest.Layers) != 1 {
		t.Fatalf("manifest: %v, %+v (want one layer)", err, manifest)
	}
	if err := json.Unmarshal(blob(manifest.Config.Digest), &config); err != nil {
		t.Fatalf("config: %v", err)
	}
	img := ociImage{name: index.Manifests[0].Annotations["io.containerd.image.name"], arch: config.Architecture,
		entrypoint: config.Config.Entrypoint, cmd: config.Config.Cmd, env: config.Config.Env}
	for p := range config.Config.ExposedPorts {
		img.exposedPorts = append(img.exposedPorts, p)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(manifest.Layers[0].Digest)))
	if err != nil {
		t.Fatal(err)
	}
	lr := tar.NewReader(zr)
	for {
		h, err := lr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			img.files = append(img.files, h.Name)
		}
	}
	return img
}

func TestImageBuild(t *testing.T) {
	dir := t.TempDir()
	static := filepath.Join(dir, "echo")
	writeELF(t, static, false)
	dynamic := filepath.Join(dir, "dyn")
	writeELF(t, dynamic, true)
	site := filepath.Join(dir, "site")
	if err := os.MkdirAll(filepath.Join(site, "www"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"server", "www/index.html"} {
		if err := os.WriteFile(filepath.Join(site, f), []byte(f), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out.tar")

	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // "" means success
		want    ociImage
	}{
		{
			name: "a static binary is the entrypoint",
			args: []string{static, "-t", "kubeish.local/echo:v1", "-o", out, "--port", "8080"},
			want: ociImage{name: "kubeish.local/echo:v1", arch: "amd64", entrypoint: []string{"/echo"}, files: []string{"echo"}, exposedPorts: []string{"8080/tcp"}},
		},
		{
			name: "a folder with an entrypoint, env and default args",
			args: []string{site, "-t", "registry.local:5000/site:v2", "-o", out, "--entrypoint", "/server", "--env", "A=b", "--", "--root=/www"},
			want: ociImage{name: "registry.local:5000/site:v2", arch: "amd64", entrypoint: []string{"/server"}, cmd: []string{"--root=/www"},
				env: []string{"A=b"}, files: []string{"server", "www/index.html"}},
		},
		{name: "no tag", args: []string{static, "-t", "kubeish.local/echo", "-o", out}, wantErr: "has no tag"},
		{name: "no tag with a registry port", args: []string{static, "-t", "registry.local:5000/echo", "-o", out}, wantErr: "has no tag"},
		{name: "no -t", args: []string{static, "-o", out}, wantErr: "-t NAME:TAG"},
		{name: "latest", args: []string{static, "-t", "kubeish.local/echo:latest", "-o", out}, wantErr: ":latest means imagePullPolicy Always"},
		{name: "no -o", args: []string{static, "-t", "kubeish.local/echo:v1"}, wantErr: "-o FILE"},
		{name: "a folder needs an entrypoint", args: []string{site, "-t", "kubeish.local/site:v1", "-o", out}, wantErr: "--entrypoint"},
		{name: "a dynamic binary", args: []string{dynamic, "-t", "kubeish.local/dyn:v1", "-o", out}, wantErr: "dynamically linked"},
		{name: "missing source", args: []string{filepath.Join(dir, "nope"), "-t", "kubeish.local/x:v1", "-o", out}, wantErr: "no such file"},
		{name: "two sources", args: []string{static, site, "-t", "kubeish.local/x:v1", "-o", out}, wantErr: "one DIR or BINARY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(out)
			var stdout, stderr bytes.Buffer
			code := cmd.Execute(context.Background(), cmd.Streams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr},
				append([]string{"image", "build"}, tc.args...))
			if tc.wantErr != "" {
				if code == 0 || !strings.Contains(stderr.String(), tc.wantErr) {
					t.Fatalf("exit %d, stderr %q; want a failure saying %q", code, stderr.String(), tc.wantErr)
				}
				if _, err := os.Stat(out); err == nil {
					t.Error("an archive was written anyway")
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if !strings.Contains(stdout.String(), "built "+tc.want.name) {
				t.Errorf("stdout %q", stdout.String())
			}
			if got := readArchive(t, out); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("archive:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
