package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// subresource serves /…/{resource}/{name}/{subresource}.
func (s *Server) subresource(req *request) (string, error) {
	m := req.r.Method
	switch {
	case req.sub == "status" && req.res.Status:
		switch m {
		case http.MethodGet:
			return "GET", s.get(req)
		case http.MethodPut:
			return "PUT", s.replaceSub(req, "status")
		case http.MethodPatch:
			return "PATCH", s.patchSub(req, "status")
		}
	case req.sub == "scale" && req.res.Scale:
		switch m {
		case http.MethodGet:
			return "GET", s.getScale(req)
		case http.MethodPut:
			return "PUT", s.updateScale(req, nil)
		case http.MethodPatch:
			return "PATCH", s.patchScale(req)
		}
	case req.sub == "binding" && req.res.GroupResource() == (schema.GroupResource{Resource: "pods"}):
		if m == http.MethodPost {
			return "POST", s.bind(req)
		}
	case req.sub == "log" && req.res.GroupResource() == (schema.GroupResource{Resource: "pods"}):
		if m == http.MethodGet {
			return "CONNECT", s.podLog(req)
		}
	case req.sub == "finalize" && req.res.GroupResource() == (schema.GroupResource{Resource: "namespaces"}):
		if m == http.MethodPut {
			return "PUT", s.finalize(req)
		}
	default:
		return m, apierrors.NewNotFound(schema.GroupResource{Group: req.res.Group, Resource: req.res.Resource + "/" + req.sub}, req.name)
	}
	return m, methodNotAllowed(req)
}

// --- scale ---------------------------------------------------------------

func replicasOf(obj runtime.Object) (spec int32, status int32, selector *metav1.LabelSelector) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return ptrInt32(o.Spec.Replicas), o.Status.Replicas, o.Spec.Selector
	case *appsv1.ReplicaSet:
		return ptrInt32(o.Spec.Replicas), o.Status.Replicas, o.Spec.Selector
	}
	return 0, 0, nil
}

func setReplicas(obj runtime.Object, n int32) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		o.Spec.Replicas = &n
	case *appsv1.ReplicaSet:
		o.Spec.Replicas = &n
	}
}

func ptrInt32(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

// scaleOf is the autoscaling/v1 Scale view of a Deployment or ReplicaSet.
func scaleOf(obj runtime.Object) *autoscalingv1.Scale {
	m := accessor(obj)
	spec, status, sel := replicasOf(obj)
	selector := ""
	if ls, err := metav1.LabelSelectorAsSelector(sel); err == nil && sel != nil {
		selector = ls.String()
	}
	return &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{Kind: "Scale", APIVersion: "autoscaling/v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
			ResourceVersion: m.GetResourceVersion(), CreationTimestamp: m.GetCreationTimestamp(),
		},
		Spec:   autoscalingv1.ScaleSpec{Replicas: spec},
		Status: autoscalingv1.ScaleStatus{Replicas: status, Selector: selector},
	}
}

func (s *Server) getScale(req *request) error {
	obj := req.res.New()
	if err := s.store.Get(req.r.Context(), req.res.Resource, req.key(), obj); err != nil {
		return statusFor(req.res, req.name, err)
	}
	s.writeObject(req.w, req.r, http.StatusOK, scaleOf(obj))
	return nil
}

// updateScale sets spec.replicas from a Scale: the body's, or the one
// patch makes of the current Scale.
func (s *Server) updateScale(req *request, patch func(cur *autoscalingv1.Scale) (*autoscalingv1.Scale, error)) error {
	dryRun, err := parseDryRun(req)
	if err != nil {
		return err
	}
	var body *autoscalingv1.Scale
	if patch == nil {
		body = &autoscalingv1.Scale{}
		if _, err := s.decodeBody(req, body); err != nil {
			return err
		}
		if body.Name != "" && body.Name != req.name {
			return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", body.Name, req.name))
		}
	}
	gk := schema.GroupKind{Group: "autoscaling", Kind: "Scale"}
	result, err := s.updateObject(req.r.Context(), req, "", dryRun, func(cur runtime.Object) (runtime.Object, error) {
		sc := body
		if patch != nil {
			var err error
			if sc, err = patch(scaleOf(cur)); err != nil {
				return nil, err
			}
		}
		if sc.Spec.Replicas < 0 {
			return nil, invalid(gk, req.name, field.ErrorList{
				field.Invalid(field.NewPath("spec", "replicas"), sc.Spec.Replicas, "must be greater than or equal to 0")})
		}
		obj := cur.DeepCopyObject()
		m := accessor(obj)
		// The Scale's resourceVersion is the precondition, if given.
		m.SetResourceVersion(sc.ResourceVersion)
		m.SetUID(sc.UID)
		setReplicas(obj, sc.Spec.Replicas)
		return obj, nil
	})
	if err != nil {
		return err
	}
	s.writeObject(req.w, req.r, http.StatusOK, scaleOf(result.obj))
	return nil
}

func (s *Server) patchScale(req *request) error {
	pt, body, mode, err := s.patchBody(req)
	if err != nil {
		return err
	}
	return s.updateScale(req, func(cur *autoscalingv1.Scale) (*autoscalingv1.Scale, error) {
		original, err := json.Marshal(cur)
		if err != nil {
			return nil, err
		}
		patched, err := applyPatch(pt, original, body, &autoscalingv1.Scale{})
		if err != nil {
			return nil, err
		}
		out := &autoscalingv1.Scale{}
		gvk := autoscalingv1.SchemeGroupVersion.WithKind("Scale")
		if _, err := s.codecs.decode(mediaJSON, patched, gvk, out, mode); err != nil {
			return nil, err
		}
		if out.ResourceVersion == cur.ResourceVersion {
			// A patch that does not name a resourceVersion applies to
			// whatever is current.
			out.ResourceVersion = ""
		}
		return out, nil
	})
}

// --- binding -------------------------------------------------------------

// bind serves pods/binding: the scheduler's assignment of a pod to a node.
func (s *Server) bind(req *request) error {
	dryRun, err := parseDryRun(req)
	if err != nil {
		return err
	}
	b := &corev1.Binding{}
	if _, err := s.decodeBody(req, b); err != nil {
		return err
	}
	gk := schema.GroupKind{Kind: "Binding"}
	var errs field.ErrorList
	if b.Name != "" && b.Name != req.name {
		errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), b.Name, "must match the pod's name "+req.name))
	}
	if b.Target.Name == "" {
		errs = append(errs, field.Required(field.NewPath("target", "name"), ""))
	}
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		errs = append(errs, field.NotSupported(field.NewPath("target", "kind"), b.Target.Kind, []string{"Node"}))
	}
	if len(errs) > 0 {
		return invalid(gk, req.name, errs)
	}
	_, err = s.updateObject(req.r.Context(), req, "binding", dryRun, func(cur runtime.Object) (runtime.Object, error) {
		pod := cur.(*corev1.Pod).DeepCopy()
		if b.UID != "" && b.UID != pod.UID {
			return nil, apierrors.NewConflict(req.res.GroupResource(), req.name, fmt.Errorf("precondition failed: UID %s does not match the pod's %s", b.UID, pod.UID))
		}
		if b.ResourceVersion != "" && b.ResourceVersion != pod.ResourceVersion {
			return nil, conflict(req.res, req.name)
		}
		if pod.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(req.res.GroupResource(), req.name, fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", req.name))
		}
		if pod.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(req.res.GroupResource(), req.name, fmt.Errorf("pod %s is already assigned to node %q", req.name, pod.Spec.NodeName))
		}
		pod.Spec.NodeName = b.Target.Name
		setCondition(&pod.Status, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()})
		pod.ResourceVersion = ""
		pod.UID = ""
		return pod, nil
	})
	if err != nil {
		return err
	}
	s.writeObject(req.w, req.r, http.StatusCreated, &metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusSuccess, Code: http.StatusCreated,
	})
	return nil
}

func setCondition(st *corev1.PodStatus, c corev1.PodCondition) {
	for i := range st.Conditions {
		if st.Conditions[i].Type == c.Type {
			if st.Conditions[i].Status == c.Status {
				c.LastTransitionTime = st.Conditions[i].LastTransitionTime
			}
			st.Conditions[i] = c
			return
		}
	}
	st.Conditions = append(st.Conditions, c)
}

// --- log -----------------------------------------------------------------

// podLog proxies pods/log to the node agent that runs the pod.
func (s *Server) podLog(req *request) error {
	ctx := req.r.Context()
	pod := &corev1.Pod{}
	if err := s.store.Get(ctx, "pods", req.key(), pod); err != nil {
		return statusFor(req.res, req.name, err)
	}
	q := req.r.URL.Query()
	container := q.Get("container")
	if container == "" {
		switch len(pod.Spec.Containers) {
		case 1:
			container = pod.Spec.Containers[0].Name
		default:
			names := make([]string, 0, len(pod.Spec.Containers))
			for _, c := range pod.Spec.Containers {
				names = append(names, c.Name)
			}
			return apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, names))
		}
	} else if !hasContainer(pod, container) {
		return apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", container, pod.Name))
	}
	for _, p := range []string{"tailLines", "limitBytes", "sinceSeconds"} {
		if v := q.Get(p); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < 0 {
				return invalid(schema.GroupKind{Kind: "PodLogOptions"}, pod.Name, field.ErrorList{field.Invalid(field.NewPath(p), v, "must be a non-negative integer")})
			}
		}
	}
	if pod.Spec.NodeName == "" {
		return apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name))
	}
	node := &corev1.Node{}
	if err := s.store.Get(ctx, "nodes", "/registry/nodes/"+pod.Spec.NodeName, node); err != nil {
		return apierrors.NewServiceUnavailable(fmt.Sprintf("node %s of pod %s: %v", pod.Spec.NodeName, pod.Name, err))
	}
	addr := ""
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			addr = a.Address
			break
		}
	}
	port := node.Status.DaemonEndpoints.KubeletEndpoint.Port
	if addr == "" || port == 0 {
		return apierrors.NewServiceUnavailable(fmt.Sprintf("node %s publishes no InternalIP and kubelet port", node.Name))
	}
	q.Del("container")
	u := url.URL{
		Scheme:   s.cfg.NodeScheme,
		Host:     net.JoinHostPort(addr, strconv.Itoa(int(port))),
		Path:     fmt.Sprintf("/containerLogs/%s/%s/%s", url.PathEscape(pod.Namespace), url.PathEscape(pod.Name), url.PathEscape(container)),
		RawQuery: q.Encode(),
	}
	up, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := s.cfg.NodeClient.Do(up)
	if err != nil {
		return apierrors.NewServiceUnavailable(fmt.Sprintf("cannot reach node %s: %v", node.Name, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return apierrors.NewServiceUnavailable(fmt.Sprintf("node %s answered the log request with a redirect (%d), which is not followed", node.Name, resp.StatusCode))
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return apierrors.NewGenericServerResponse(resp.StatusCode, "get", schema.GroupResource{Resource: "pods/log"}, pod.Name, string(msg), 0, false)
	}
	req.w.Header().Set("Content-Type", "text/plain")
	req.w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(req.w)
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			err := writeChunk(rc, func() error {
				_, err := req.w.Write(buf[:n])
				return err
			})
			if err != nil {
				return nil // the client went away or stopped reading
			}
		}
		if rerr != nil {
			return nil
		}
	}
}

func hasContainer(pod *corev1.Pod, name string) bool {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			if c.Name == name {
				return true
			}
		}
	}
	return false
}

// --- namespaces/finalize ---------------------------------------------------

// finalize serves namespaces/{name}/finalize: the namespace controller
// removes its spec finalizer here once the namespace is empty.
func (s *Server) finalize(req *request) error {
	ns := &corev1.Namespace{}
	if _, err := s.decodeBody(req, ns); err != nil {
		return err
	}
	dryRun, err := parseDryRun(req)
	if err != nil {
		return err
	}
	result, err := s.updateObject(req.r.Context(), req, "finalize", dryRun, func(cur runtime.Object) (runtime.Object, error) {
		out := cur.(*corev1.Namespace).DeepCopy()
		out.Spec.Finalizers = ns.Spec.Finalizers
		out.ResourceVersion = ns.ResourceVersion
		return out, nil
	})
	if err != nil {
		return err
	}
	s.writeObject(req.w, req.r, http.StatusOK, result.obj)
	return nil
}
