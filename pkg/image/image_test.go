package image

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuild(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(bin, []byte("#!binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Ref: "kubeish.local/app:v1", Files: map[string]string{"/app": bin}, Entrypoint: []string{"/app"}}
	var a, b bytes.Buffer
	if err := Build(spec, "amd64", &a); err != nil {
		t.Fatal(err)
	}
	if err := Build(spec, "amd64", &b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two builds of the same inputs differ")
	}
	files := map[string][]byte{}
	tr := tar.NewReader(&a)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], _ = io.ReadAll(tr)
	}
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations["io.containerd.image.name"] != spec.Ref ||
		index.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v1" {
		t.Fatalf("index: %+v", index)
	}
	if _, ok := files[blobPath(index.Manifests[0].Digest)]; !ok {
		t.Error("manifest blob missing")
	}
	if _, ok := files["oci-layout"]; !ok {
		t.Error("oci-layout missing")
	}
}

func TestValidate(t *testing.T) {
	for _, ref := range []string{"app", "app:latest", "host:5000/app"} {
		if err := (Spec{Ref: ref, Files: map[string]string{"/a": "a"}}).Validate(); err == nil {
			t.Errorf("%q accepted", ref)
		}
	}
	if err := (Spec{Ref: "host:5000/app:v2", Files: map[string]string{"/a": "a"}}).Validate(); err != nil {
		t.Error(err)
	}
}

// writeELF writes a minimal ELF executable header for machine, with a
// PT_INTERP program header when dynamic (what a dynamically linked
// binary has).
func writeELF(t *testing.T, file string, machine elf.Machine, dynamic bool) {
	t.Helper()
	progs := []elf.Prog64{{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Vaddr: 0x400000, Paddr: 0x400000, Align: 0x1000}}
	if dynamic {
		progs = append([]elf.Prog64{{Type: uint32(elf.PT_INTERP), Flags: uint32(elf.PF_R)}}, progs...)
	}
	h := elf.Header64{
		Ident: [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)},
		Type:  uint16(elf.ET_EXEC), Machine: uint16(machine), Version: uint32(elf.EV_CURRENT), Entry: 0x400000,
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

func TestStaticBinaryArch(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		write   func(string)
		want    string
		wantErr string
	}{
		{"static amd64", func(p string) { writeELF(t, p, elf.EM_X86_64, false) }, "amd64", ""},
		{"static arm64", func(p string) { writeELF(t, p, elf.EM_AARCH64, false) }, "arm64", ""},
		{"dynamic", func(p string) { writeELF(t, p, elf.EM_X86_64, true) }, "", "dynamically linked"},
		{"a script", func(p string) { _ = os.WriteFile(p, []byte("#!/bin/sh\necho hi\n"), 0o755) }, "", "not an ELF executable"},
		{"missing", func(string) {}, "", "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			tc.write(p)
			got, err := StaticBinaryArch(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
