package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubeish/kubeish/apiserver/registry"
	"github.com/kubeish/kubeish/apiserver/storage"
)

// protectedNamespaces may not be deleted, as in Kubernetes.
var protectedNamespaces = []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic}

// deleteOptions reads DeleteOptions from the body (if any) and the query.
func (s *Server) deleteOptions(req *request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, err := readBody(req.r)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		if err := s.decodeDeleteOptions(body, opts); err != nil {
			return nil, err
		}
	}
	q := req.r.URL.Query()
	if v := q.Get("gracePeriodSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("gracePeriodSeconds %q is not an integer", v))
		}
		opts.GracePeriodSeconds = &n
	}
	if v := q.Get("propagationPolicy"); v != "" {
		p := metav1.DeletionPropagation(v)
		opts.PropagationPolicy = &p
	}
	if v := q.Get("orphanDependents"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("orphanDependents %q is not a boolean", v))
		}
		opts.OrphanDependents = &b
	}
	opts.DryRun = append(opts.DryRun, q["dryRun"]...)
	for _, v := range opts.DryRun {
		if v != metav1.DryRunAll {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("dryRun %q is not supported; the only value is %q", v, metav1.DryRunAll))
		}
	}
	if p := opts.PropagationPolicy; p != nil {
		switch *p {
		case metav1.DeletePropagationOrphan, metav1.DeletePropagationBackground, metav1.DeletePropagationForeground:
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("propagationPolicy %q is not Orphan, Background or Foreground", *p))
		}
		if opts.OrphanDependents != nil {
			return nil, apierrors.NewBadRequest("orphanDependents and propagationPolicy may not both be set")
		}
	}
	if g := opts.GracePeriodSeconds; g != nil && *g < 0 {
		zero := int64(0)
		opts.GracePeriodSeconds = &zero
	}
	return opts, nil
}

// markDeleted decides how deleting cur proceeds: it returns the object with
// deletionTimestamp, grace period and finalizers set when deletion must
// wait (for a pod's node, finalizers, the namespace controller), or nil
// when cur can go at once.
func markDeleted(res *registry.Resource, cur runtime.Object, opts *metav1.DeleteOptions, now time.Time) runtime.Object {
	obj := cur.DeepCopyObject()
	m := accessor(obj)
	finalizers := m.GetFinalizers()
	policy := metav1.DeletePropagationBackground
	if opts.PropagationPolicy != nil {
		policy = *opts.PropagationPolicy
	} else if opts.OrphanDependents != nil && *opts.OrphanDependents {
		policy = metav1.DeletePropagationOrphan
	}
	switch policy {
	case metav1.DeletePropagationOrphan:
		if !slices.Contains(finalizers, metav1.FinalizerOrphanDependents) {
			finalizers = append(finalizers, metav1.FinalizerOrphanDependents)
		}
	case metav1.DeletePropagationForeground:
		if !slices.Contains(finalizers, metav1.FinalizerDeleteDependents) {
			finalizers = append(finalizers, metav1.FinalizerDeleteDependents)
		}
	}
	m.SetFinalizers(finalizers)

	grace := int64(0)
	switch o := obj.(type) {
	case *corev1.Pod:
		grace = 30
		if o.Spec.TerminationGracePeriodSeconds != nil {
			grace = *o.Spec.TerminationGracePeriodSeconds
		}
		if opts.GracePeriodSeconds != nil {
			grace = *opts.GracePeriodSeconds
		}
		// Nothing runs an unbound pod, and a finished one runs nothing.
		if o.Spec.NodeName == "" || o.Status.Phase == corev1.PodSucceeded || o.Status.Phase == corev1.PodFailed {
			grace = 0
		}
	case *corev1.Namespace:
		o.Status.Phase = corev1.NamespaceTerminating
	}
	if old := m.GetDeletionGracePeriodSeconds(); old != nil && *old < grace {
		grace = *old // a grace period can only shorten
	}
	if ts := m.GetDeletionTimestamp(); ts == nil || grace < ptrValue(m.GetDeletionGracePeriodSeconds()) {
		t := metav1.NewTime(now.Add(time.Duration(grace) * time.Second))
		m.SetDeletionTimestamp(&t)
	}
	m.SetDeletionGracePeriodSeconds(&grace)
	if readyToDelete(obj) {
		return nil
	}
	return obj
}

func ptrValue(p *int64) int64 {
	if p == nil {
		return 1<<63 - 1
	}
	return *p
}

// deleteObject deletes (or marks for deletion) the object at req's key.
func (s *Server) deleteObject(ctx context.Context, req *request, opts *metav1.DeleteOptions) (runtime.Object, bool, error) {
	res := req.res
	if res.GroupResource() == (schema.GroupResource{Resource: "namespaces"}) && slices.Contains(protectedNamespaces, req.name) {
		return nil, false, apierrors.NewForbidden(res.GroupResource(), req.name, fmt.Errorf("this namespace may not be deleted"))
	}
	try := func(cur runtime.Object) (storage.UpdateResult, error) {
		cm := accessor(cur)
		if p := opts.Preconditions; p != nil {
			if p.UID != nil && *p.UID != cm.GetUID() {
				return storage.UpdateResult{}, apierrors.NewConflict(res.GroupResource(), req.name,
					fmt.Errorf("precondition failed: UID in precondition: %s, UID in object meta: %s", *p.UID, cm.GetUID()))
			}
			if p.ResourceVersion != nil && *p.ResourceVersion != cm.GetResourceVersion() {
				return storage.UpdateResult{}, apierrors.NewConflict(res.GroupResource(), req.name,
					fmt.Errorf("precondition failed: ResourceVersion in precondition: %s, ResourceVersion in object meta: %s", *p.ResourceVersion, cm.GetResourceVersion()))
			}
		}
		if obj := markDeleted(res, cur, opts, time.Now()); obj != nil {
			return storage.UpdateResult{Object: obj}, nil
		}
		var extra storage.Extra
		if svc, ok := cur.(*corev1.Service); ok {
			extra = s.cfg.Allocator.Release(svc)
		}
		return storage.UpdateResult{Delete: true, Extra: extra}, nil
	}
	if len(opts.DryRun) > 0 {
		cur := res.New()
		if err := s.store.Get(ctx, res.Resource, req.key(), cur); err != nil {
			return nil, false, statusFor(res, req.name, err)
		}
		r, err := try(cur)
		if err != nil {
			return nil, false, err
		}
		if r.Delete {
			return cur, true, nil
		}
		return r.Object, false, nil
	}
	obj, deleted, err := s.store.GuaranteedUpdate(ctx, res.Resource, req.key(), res.New, try)
	if err != nil {
		return nil, false, statusFor(res, req.name, err)
	}
	return obj, deleted, nil
}

func (s *Server) delete(req *request) error {
	opts, err := s.deleteOptions(req)
	if err != nil {
		return err
	}
	obj, deleted, err := s.deleteObject(req.r.Context(), req, opts)
	if err != nil {
		return err
	}
	// Like Kubernetes: a pending deletion answers the object (202 only
	// when the client asked for cascading with orphanDependents=false); a
	// finished one answers the object for pods and a Status for other kinds.
	if !deleted {
		code := http.StatusOK
		if opts.OrphanDependents != nil && !*opts.OrphanDependents { //nolint:staticcheck // what clients still send
			code = http.StatusAccepted
		}
		s.writeObject(req.w, req.r, code, obj)
		return nil
	}
	if _, ok := obj.(*corev1.Pod); ok {
		s.writeObject(req.w, req.r, http.StatusOK, obj)
		return nil
	}
	m := accessor(obj)
	s.writeObject(req.w, req.r, http.StatusOK, &metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusSuccess,
		Details:  &metav1.StatusDetails{Name: m.GetName(), Group: req.res.Group, Kind: req.res.Resource, UID: m.GetUID()},
	})
	return nil
}

// deleteCollection deletes every object that matches the selectors.
func (s *Server) deleteCollection(req *request) error {
	p, err := parseListParams(req)
	if err != nil {
		return err
	}
	opts, err := s.deleteOptions(req)
	if err != nil {
		return err
	}
	ctx := req.r.Context()
	result, err := s.store.List(ctx, req.res.Resource, req.res.Prefix(req.namespace), req.res.New, storage.ListOptions{Predicate: p.matches(req.res)})
	if err != nil {
		return err
	}
	var items []runtime.Object
	for _, obj := range result.Items {
		m := accessor(obj)
		one := *req
		one.namespace, one.name = m.GetNamespace(), m.GetName()
		if one.res.GroupResource() == (schema.GroupResource{Resource: "namespaces"}) && slices.Contains(protectedNamespaces, one.name) {
			continue
		}
		out, _, err := s.deleteObject(ctx, &one, opts)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		items = append(items, out)
	}
	list := req.res.NewList()
	if err := meta.SetList(list, items); err != nil {
		return err
	}
	s.writeObject(req.w, req.r, http.StatusOK, list)
	return nil
}

// decodeDeleteOptions reads a DeleteOptions body. client-go labels it
// apiVersion v1, kubectl meta.k8s.io/v1 (the group the type lives in); both
// are the same type, so a JSON body of either is read as it is.
func (s *Server) decodeDeleteOptions(body []byte, opts *metav1.DeleteOptions) error {
	var tm metav1.TypeMeta
	if json.Unmarshal(body, &tm) == nil {
		if (tm.Kind != "" && tm.Kind != "DeleteOptions") || (tm.APIVersion != "" && tm.APIVersion != "v1" && tm.APIVersion != metav1.SchemeGroupVersion.String()) {
			return apierrors.NewBadRequest(fmt.Sprintf("the body is a %s %s, not DeleteOptions", tm.APIVersion, tm.Kind))
		}
		if err := json.Unmarshal(body, opts); err != nil {
			return apierrors.NewBadRequest(fmt.Sprintf("the body is not DeleteOptions: %v", err))
		}
		return nil
	}
	gvk := metav1.SchemeGroupVersion.WithKind("DeleteOptions")
	if _, _, err := s.codecs.factory.UniversalDeserializer().Decode(body, &gvk, opts); err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("the body is not DeleteOptions: %v", err))
	}
	return nil
}
