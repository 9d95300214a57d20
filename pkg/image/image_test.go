package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
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
