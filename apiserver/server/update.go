package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kubeish/kubeish/apiserver/auth/authz"
	"github.com/kubeish/kubeish/apiserver/registry"
	"github.com/kubeish/kubeish/apiserver/storage"
	"github.com/kubeish/kubeish/apiserver/validation"
)

// mutateFunc builds the object a write asks for from the current one. It
// must not change cur.
type mutateFunc func(cur runtime.Object) (runtime.Object, error)

// updateResult is the outcome of one update.
type updateResult struct {
	obj      runtime.Object
	deleted  bool
	warnings []string
}

// conflict is the 409 for a write based on a stale object.
func conflict(res *registry.Resource, name string) error {
	return apierrors.NewConflict(res.GroupResource(), name,
		errors.New("the object has been modified; please apply your changes to the latest version and try again"))
}

// updateObject runs one read-modify-write of the object at req's key: it
// applies mutate to the current object, keeps the server's fields, defaults
// and validates, allocates for Services, and removes an object whose
// deletion has nothing left to wait for. A stale resourceVersion in the new
// object is a conflict.
func (s *Server) updateObject(ctx context.Context, req *request, sub string, dryRun bool, mutate mutateFunc) (*updateResult, error) {
	res := req.res
	out := &updateResult{}
	var plan *registry.Plan
	var taken map[string]bool
	try := func(cur runtime.Object) (storage.UpdateResult, error) {
		plan = nil
		obj, err := mutate(cur)
		if err != nil || obj == nil {
			return storage.UpdateResult{}, err
		}
		m, cm := accessor(obj), accessor(cur)
		if rv := m.GetResourceVersion(); rv != "" && rv != cm.GetResourceVersion() {
			return storage.UpdateResult{}, conflict(res, req.name)
		}
		if m.GetUID() != "" && m.GetUID() != cm.GetUID() {
			return storage.UpdateResult{}, apierrors.NewConflict(res.GroupResource(), req.name,
				fmt.Errorf("precondition failed: UID in object meta: %s, UID of the stored object: %s", m.GetUID(), cm.GetUID()))
		}
		prepareUpdate(res, obj, cur, sub)
		validation.SetDefaults(obj)
		var errs field.ErrorList
		if sub != "" {
			// status, binding, finalize: the spec rules do not apply.
			errs = validation.ValidateStatusUpdate(obj, cur)
		} else {
			errs, out.warnings = validation.ValidateUpdate(obj, cur)
		}
		if len(errs) > 0 {
			return storage.UpdateResult{}, invalid(res.GVK().GroupKind(), req.name, errs)
		}
		if err := s.admit(ctx, req.attrs, obj, cur); err != nil {
			return storage.UpdateResult{}, err
		}
		var extra storage.Extra
		if svc, ok := obj.(*corev1.Service); ok {
			if sub == "" {
				var errs field.ErrorList
				if plan, errs = s.cfg.Allocator.Allocate(svc, cur.(*corev1.Service), taken); len(errs) > 0 {
					return storage.UpdateResult{}, invalid(res.GVK().GroupKind(), req.name, errs)
				}
				extra = plan.Extra
			}
		}
		if readyToDelete(obj) {
			if svc, ok := cur.(*corev1.Service); ok {
				extra = s.cfg.Allocator.Release(svc)
			}
			return storage.UpdateResult{Delete: true, Extra: extra}, nil
		}
		return storage.UpdateResult{Object: obj, Extra: extra}, nil
	}
	if dryRun {
		cur := res.New()
		if err := s.store.Get(ctx, res.Resource, req.key(), cur); err != nil {
			return nil, statusFor(res, req.name, err)
		}
		r, err := try(cur)
		if err != nil {
			return nil, err
		}
		out.obj, out.deleted = r.Object, r.Delete
		if r.Object == nil {
			out.obj = cur
		}
		return out, nil
	}
	for attempt := 0; ; attempt++ {
		obj, deleted, err := s.store.GuaranteedUpdate(ctx, res.Resource, req.key(), res.New, try)
		if errors.Is(err, storage.ErrPrecondition) && plan != nil && attempt < 10 {
			if err := s.checkRequested(ctx, res, req.name, plan); err != nil {
				return nil, err
			}
			if taken, err = registry.Taken(ctx, s.store.Client()); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, statusFor(res, req.name, err)
		}
		out.obj, out.deleted = obj, deleted
		return out, nil
	}
}

// replace serves PUT on an object (and on its status through subresource).
func (s *Server) replace(req *request) error {
	return s.replaceSub(req, "")
}

func (s *Server) replaceSub(req *request, sub string) error {
	dryRun, err := parseDryRun(req)
	if err != nil {
		return err
	}
	obj := req.res.New()
	warnings, err := s.decodeBody(req, obj)
	if err != nil {
		return err
	}
	if err := checkMeta(req, obj, true); err != nil {
		return err
	}
	ctx := req.r.Context()
	result, err := s.updateObject(ctx, req, sub, dryRun, func(runtime.Object) (runtime.Object, error) {
		return obj.DeepCopyObject(), nil
	})
	if apierrors.IsNotFound(err) && req.res.AllowCreateOnUpdate && sub == "" {
		if accessor(obj).GetResourceVersion() != "" {
			return err
		}
		// Creating through PUT needs the create verb too.
		at := req.attrs
		at.Verb, at.Name = authz.VerbCreate, ""
		if err := s.authorize(ctx, &at); err != nil {
			return err
		}
		if err := s.admit(ctx, at, obj, nil); err != nil {
			return err
		}
		more, err := s.createObject(ctx, req.res, obj, dryRun)
		if err != nil {
			return err
		}
		warn(req.w, append(warnings, more...))
		s.writeObject(req.w, req.r, http.StatusCreated, obj)
		return nil
	}
	if err != nil {
		return err
	}
	warn(req.w, append(warnings, result.warnings...))
	s.writeObject(req.w, req.r, http.StatusOK, result.obj)
	return nil
}

// patchType reads the patch format from the Content-Type.
func patchType(r *http.Request) (types.PatchType, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = ct
	}
	switch pt := types.PatchType(mt); pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType:
		return pt, nil
	case types.ApplyYAMLPatchType, types.ApplyCBORPatchType:
		// Server-side apply needs managed fields; kubeish does not track them.
		return "", unsupportedMediaType(ct)
	}
	return "", unsupportedMediaType(ct)
}

// applyPatch applies a patch of type pt to the JSON of an object whose Go
// type is dataStruct (for strategic merge).
func applyPatch(pt types.PatchType, original, patch []byte, dataStruct any) ([]byte, error) {
	var out []byte
	var err error
	switch pt {
	case types.JSONPatchType:
		var p jsonpatch.Patch
		if p, err = jsonpatch.DecodePatch(patch); err == nil {
			if len(p) > maxJSONPatchOperations {
				return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("the json patch has %d operations, more than the %d allowed", len(p), maxJSONPatchOperations))
			}
			out, err = p.Apply(original)
		}
	case types.MergePatchType:
		out, err = jsonpatch.MergePatch(original, patch)
	case types.StrategicMergePatchType:
		out, err = strategicpatch.StrategicMergePatch(original, patch, dataStruct)
	}
	var tooBig *jsonpatch.AccumulatedCopySizeError
	switch {
	case errors.As(err, &tooBig):
		return nil, apierrors.NewRequestEntityTooLargeError(err.Error())
	case err != nil:
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the %s could not be applied: %v", pt, err))
	case len(out) > maxBodyBytes:
		return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("the patched object would be %d bytes; the limit is %d", len(out), maxBodyBytes))
	}
	return out, nil
}

// maxJSONPatchOperations bounds a JSON patch's length, as Kubernetes does.
const maxJSONPatchOperations = 10000

func init() {
	// A JSON patch's "copy" operations can double the document each: bound
	// what they add in all (the library's default is no bound), as the
	// Kubernetes apiserver does.
	jsonpatch.AccumulatedCopySizeLimit = 2 * maxBodyBytes
}

// patchBody reads a patch request: its type, its body and whether the
// body is well-formed JSON at all.
func (s *Server) patchBody(req *request) (types.PatchType, []byte, fieldValidation, error) {
	pt, err := patchType(req.r)
	if err != nil {
		return "", nil, "", err
	}
	mode, err := parseFieldValidation(req.r)
	if err != nil {
		return "", nil, "", err
	}
	body, err := readBody(req.r)
	if err != nil {
		return "", nil, "", err
	}
	if !json.Valid(body) {
		return "", nil, "", apierrors.NewBadRequest("the patch is not valid JSON")
	}
	return pt, body, mode, nil
}

// patch serves PATCH on an object or its status.
func (s *Server) patch(req *request) error {
	return s.patchSub(req, "")
}

func (s *Server) patchSub(req *request, sub string) error {
	dryRun, err := parseDryRun(req)
	if err != nil {
		return err
	}
	pt, body, mode, err := s.patchBody(req)
	if err != nil {
		return err
	}
	var warnings []string
	result, err := s.updateObject(req.r.Context(), req, sub, dryRun, func(cur runtime.Object) (runtime.Object, error) {
		cur = cur.DeepCopyObject()
		if err := s.codecs.setKind(cur); err != nil {
			return nil, err
		}
		original, err := json.Marshal(cur)
		if err != nil {
			return nil, err
		}
		patched, err := applyPatch(pt, original, body, req.res.New())
		if err != nil {
			return nil, err
		}
		obj := req.res.New()
		if warnings, err = s.codecs.decode(mediaJSON, patched, req.res.GVK(), obj, mode); err != nil {
			return nil, err
		}
		m, cm := accessor(obj), accessor(cur)
		if m.GetName() != cm.GetName() || m.GetNamespace() != cm.GetNamespace() {
			return nil, apierrors.NewBadRequest("a patch may not change metadata.name or metadata.namespace")
		}
		return obj, nil
	})
	if err != nil {
		return err
	}
	warn(req.w, append(warnings, result.warnings...))
	s.writeObject(req.w, req.r, http.StatusOK, result.obj)
	return nil
}
