package registry

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
)

// StorageCodec encodes objects for etcd as JSON with apiVersion and kind, as
// DESIGN.md's storage section fixes.
type StorageCodec struct {
	scheme *runtime.Scheme
	json   *json.Serializer
}

// NewStorageCodec returns the codec for scheme.
func NewStorageCodec(scheme *runtime.Scheme) *StorageCodec {
	return &StorageCodec{
		scheme: scheme,
		json:   json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{}),
	}
}

// Encode returns obj's stored form.
func (c *StorageCodec) Encode(obj runtime.Object) ([]byte, error) {
	gvks, _, err := c.scheme.ObjectKinds(obj)
	if err != nil {
		return nil, err
	}
	obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	return runtime.Encode(c.json, obj)
}

// Decode reads a stored object into into.
func (c *StorageCodec) Decode(data []byte, into runtime.Object) error {
	out, _, err := c.json.Decode(data, nil, into)
	if err != nil {
		return err
	}
	if out != into {
		return fmt.Errorf("stored object is a %T, not a %T", out, into)
	}
	return nil
}
