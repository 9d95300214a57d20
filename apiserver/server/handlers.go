package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kubeish/kubeish/apiserver/cacher"
	"github.com/kubeish/kubeish/apiserver/registry"
	"github.com/kubeish/kubeish/apiserver/storage"
	"github.com/kubeish/kubeish/apiserver/validation"
)

// collection serves /…/{resource}: list, watch, create, deletecollection.
func (s *Server) collection(req *request) (string, error) {
	switch req.r.Method {
	case http.MethodGet:
		p, err := parseListParams(req)
		if err != nil {
			return "LIST", err
		}
		if p.watch {
			return "WATCH", s.watch(req, p)
		}
		return "LIST", s.list(req, p)
	case http.MethodPost:
		return "POST", s.create(req)
	case http.MethodDelete:
		return "DELETE", s.deleteCollection(req)
	}
	return req.r.Method, methodNotAllowed(req)
}

// item serves /…/{resource}/{name}: get, update, patch, delete.
func (s *Server) item(req *request) (string, error) {
	switch req.r.Method {
	case http.MethodGet:
		if q := req.r.URL.Query(); q.Get("watch") == "true" || q.Get("watch") == "1" {
			// The old per-object watch path: a watch with a name selector.
			p, err := parseListParams(req)
			if err != nil {
				return "WATCH", err
			}
			p.field = fields.AndSelectors(p.field, fields.OneTermEqualSelector("metadata.name", req.name))
			return "WATCH", s.watch(req, p)
		}
		return "GET", s.get(req)
	case http.MethodPut:
		return "PUT", s.replace(req)
	case http.MethodPatch:
		return "PATCH", s.patch(req)
	case http.MethodDelete:
		return "DELETE", s.delete(req)
	}
	return req.r.Method, methodNotAllowed(req)
}

func methodNotAllowed(req *request) error {
	return apierrors.NewMethodNotSupported(req.res.GroupResource(), strings.ToLower(req.r.Method))
}

func accessor(obj runtime.Object) metav1.Object {
	m, err := meta.Accessor(obj)
	if err != nil {
		// Every registered kind has ObjectMeta; this is a programming error.
		panic(err)
	}
	return m
}

func (req *request) key() string { return req.res.Key(req.namespace, req.name) }

func parseDryRun(req *request) (bool, error) {
	values := req.r.URL.Query()["dryRun"]
	for _, v := range values {
		if v != metav1.DryRunAll {
			return false, apierrors.NewBadRequest(fmt.Sprintf("dryRun %q is not supported; the only value is %q", v, metav1.DryRunAll))
		}
	}
	return len(values) > 0, nil
}

// decodeBody reads and decodes the request body as req's kind (or as gvk's
// type into obj), returning decoder warnings.
func (s *Server) decodeBody(req *request, obj runtime.Object) ([]string, error) {
	mode, err := parseFieldValidation(req.r)
	if err != nil {
		return nil, err
	}
	body, err := readBody(req.r)
	if err != nil {
		return nil, err
	}
	gvks, _, err := s.cfg.Scheme.ObjectKinds(obj)
	if err != nil {
		return nil, err
	}
	return s.codecs.decode(req.r.Header.Get("Content-Type"), body, gvks[0], obj, mode)
}

// checkMeta makes obj's namespace and name agree with the URL.
func checkMeta(req *request, obj runtime.Object, nameFromURL bool) error {
	m := accessor(obj)
	if req.res.Namespaced {
		switch m.GetNamespace() {
		case "":
			m.SetNamespace(req.namespace)
		case req.namespace:
		default:
			return apierrors.NewBadRequest(fmt.Sprintf("the namespace of the provided object (%s) does not match the namespace sent on the request (%s)", m.GetNamespace(), req.namespace))
		}
	} else {
		m.SetNamespace("")
	}
	if nameFromURL && m.GetName() != req.name {
		if m.GetName() == "" {
			m.SetName(req.name)
		} else {
			return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), req.name))
		}
	}
	return nil
}

// prepareCreate sets the server-owned fields of a new object.
func prepareCreate(res *registry.Resource, obj runtime.Object, now time.Time) {
	m := accessor(obj)
	m.SetUID(types.UID(uuid.NewString()))
	m.SetCreationTimestamp(metav1.NewTime(now))
	m.SetResourceVersion("")
	m.SetSelfLink("")
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	m.SetGeneration(0)
	if res.HasSpec() {
		m.SetGeneration(1)
	}
	if !res.KeepStatusOnCreate {
		registry.ClearStatus(obj)
	}
	if res.PrepareForCreate != nil {
		res.PrepareForCreate(obj)
	}
}

// prepareUpdate carries the server-owned fields of cur into obj, for a write
// to the main resource (sub "") or to its status.
func prepareUpdate(res *registry.Resource, obj, cur runtime.Object, sub string) {
	m, cm := accessor(obj), accessor(cur)
	m.SetUID(cm.GetUID())
	m.SetCreationTimestamp(cm.GetCreationTimestamp())
	m.SetDeletionTimestamp(cm.GetDeletionTimestamp())
	m.SetDeletionGracePeriodSeconds(cm.GetDeletionGracePeriodSeconds())
	m.SetSelfLink("")
	m.SetGeneration(cm.GetGeneration())
	switch sub {
	case "":
		if res.Status {
			registry.CopyStatus(obj, cur)
		}
		if res.HasSpec() && !registry.SpecEqual(obj, cur) {
			m.SetGeneration(cm.GetGeneration() + 1)
		}
		if res.PrepareForUpdate != nil {
			res.PrepareForUpdate(obj, cur)
		}
	case "status":
		registry.CopySpec(obj, cur)
		m.SetOwnerReferences(cm.GetOwnerReferences())
		m.SetFinalizers(cm.GetFinalizers())
	}
}

// readyToDelete reports whether an object marked for deletion has nothing
// left to wait for: no finalizers and no grace period running.
func readyToDelete(obj runtime.Object) bool {
	m := accessor(obj)
	if m.GetDeletionTimestamp() == nil || len(m.GetFinalizers()) > 0 {
		return false
	}
	if g := m.GetDeletionGracePeriodSeconds(); g != nil && *g > 0 {
		return false
	}
	if ns, ok := obj.(*corev1.Namespace); ok && len(ns.Spec.Finalizers) > 0 {
		return false
	}
	return true
}

// checkNamespace refuses writes into a namespace that is missing or being
// deleted.
func (s *Server) checkNamespace(ctx context.Context, res *registry.Resource, ns string) error {
	if !res.Namespaced {
		return nil
	}
	nsRes, _ := s.res.Get("", "namespaces")
	cur := &corev1.Namespace{}
	if err := s.store.Get(ctx, nsRes.Resource, nsRes.Key("", ns), cur); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return apierrors.NewNotFound(nsRes.GroupResource(), ns)
		}
		return err
	}
	if cur.Status.Phase == corev1.NamespaceTerminating || cur.DeletionTimestamp != nil {
		return apierrors.NewForbidden(res.GroupResource(), "",
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns))
	}
	return nil
}

func (s *Server) create(req *request) error {
	if req.res.Namespaced && req.namespace == "" {
		return apierrors.NewMethodNotSupported(req.res.GroupResource(), "create in all namespaces; use /namespaces/{namespace}/"+req.res.Resource)
	}
	dryRun, err := parseDryRun(req)
	if err != nil {
		return err
	}
	obj := req.res.New()
	warnings, err := s.decodeBody(req, obj)
	if err != nil {
		return err
	}
	if err := checkMeta(req, obj, false); err != nil {
		return err
	}
	if err := s.admit(req.r.Context(), req.attrs, obj, nil); err != nil {
		return err
	}
	more, err := s.createObject(req.r.Context(), req.res, obj, dryRun)
	if err != nil {
		return err
	}
	warn(req.w, append(warnings, more...))
	s.writeObject(req.w, req.r, http.StatusCreated, obj)
	return nil
}

// createObject defaults, validates and stores a new object, allocating what
// a Service needs in the same transaction. It returns validation warnings.
func (s *Server) createObject(ctx context.Context, res *registry.Resource, obj runtime.Object, dryRun bool) ([]string, error) {
	m := accessor(obj)
	generated := m.GetName() == "" && m.GetGenerateName() != ""
	prepareCreate(res, obj, time.Now())
	validation.SetDefaults(obj)
	var taken map[string]bool
	for attempt := 0; ; attempt++ {
		if generated {
			m.SetName(m.GetGenerateName() + utilrand.String(5))
		}
		errs, warnings := validation.Validate(obj)
		if len(errs) > 0 {
			return nil, invalid(res.GVK().GroupKind(), m.GetName(), errs)
		}
		if err := s.checkNamespace(ctx, res, m.GetNamespace()); err != nil {
			return nil, err
		}
		opts := storage.CreateOptions{TTL: res.TTL}
		var plan *registry.Plan
		var orig *corev1.Service
		if svc, ok := obj.(*corev1.Service); ok {
			orig = svc.DeepCopy()
			var errs field.ErrorList
			if plan, errs = s.cfg.Allocator.Allocate(svc, nil, taken); len(errs) > 0 {
				return nil, invalid(res.GVK().GroupKind(), m.GetName(), errs)
			}
			opts.Extra = plan.Extra
		}
		if dryRun {
			return warnings, nil
		}
		err := s.store.Create(ctx, res.Resource, res.Key(m.GetNamespace(), m.GetName()), obj, opts)
		switch {
		case err == nil:
			return warnings, nil
		case errors.Is(err, storage.ErrAlreadyExists) && generated && attempt < 5:
			continue
		case errors.Is(err, storage.ErrPrecondition) && plan != nil && attempt < 10:
			if err := s.checkRequested(ctx, res, m.GetName(), plan); err != nil {
				return nil, err
			}
			// A randomly picked value was taken meanwhile: pick again,
			// among the values free now.
			if taken, err = registry.Taken(ctx, s.store.Client()); err != nil {
				return nil, err
			}
			orig.DeepCopyInto(obj.(*corev1.Service))
			continue
		}
		return nil, statusFor(res, m.GetName(), err)
	}
}

// checkRequested answers Invalid when a value the user asked for by name is
// already allocated to another Service.
func (s *Server) checkRequested(ctx context.Context, res *registry.Resource, name string, plan *registry.Plan) error {
	var errs field.ErrorList
	for key, path := range plan.Requested {
		taken, err := s.store.Exists(ctx, key)
		if err != nil {
			return err
		}
		if taken {
			what := "IP"
			if strings.HasPrefix(key, registry.NodePortPrefix) {
				what = "port"
			}
			value := key[strings.LastIndex(key, "/")+1:]
			errs = append(errs, field.Invalid(path, value, fmt.Sprintf("provided %s is already allocated", what)))
		}
	}
	if len(errs) > 0 {
		return invalid(res.GVK().GroupKind(), name, errs)
	}
	return nil
}

func (s *Server) get(req *request) error {
	obj := req.res.New()
	if err := s.store.Get(req.r.Context(), req.res.Resource, req.key(), obj); err != nil {
		return statusFor(req.res, req.name, err)
	}
	return s.writeObjects(req, obj, []runtime.Object{obj}, nil)
}

// writeObjects answers with obj (an object or a list), or with the Table
// of items when the client asked for one.
func (s *Server) writeObjects(req *request, obj runtime.Object, items []runtime.Object, lm metav1.ListInterface) error {
	acc, err := s.codecs.negotiate(req.r, true)
	if err != nil {
		return err
	}
	if !acc.table {
		s.writeWith(req.w, acc.info, http.StatusOK, obj)
		return nil
	}
	inc, err := parseIncludeObject(req.r.URL.Query().Get("includeObject"))
	if err != nil {
		return err
	}
	t, err := s.toTable(req.res.Kind, items, inc, time.Now())
	if err != nil {
		return err
	}
	if lm != nil {
		t.ResourceVersion, t.Continue, t.RemainingItemCount = lm.GetResourceVersion(), lm.GetContinue(), lm.GetRemainingItemCount()
	} else {
		t.ResourceVersion = accessor(obj).GetResourceVersion()
	}
	s.writeWith(req.w, acc.info, http.StatusOK, t)
	return nil
}

// listParams are the query parameters of a list or watch.
type listParams struct {
	label             labels.Selector
	field             fields.Selector
	resourceVersion   string
	rvMatch           metav1.ResourceVersionMatch
	limit             int64
	continueKey       string
	continueRev       int64
	watch             bool
	allowBookmarks    bool
	sendInitialEvents *bool
	timeout           time.Duration
}

// continueToken is the opaque `continue` of a paged list, in Kubernetes'
// own shape.
type continueToken struct {
	APIVersion      string `json:"v"`
	ResourceVersion int64  `json:"rv"`
	StartKey        string `json:"start"`
}

func parseListParams(req *request) (*listParams, error) {
	q := req.r.URL.Query()
	p := &listParams{label: labels.Everything(), field: fields.Everything()}
	var err error
	if v := q.Get("labelSelector"); v != "" {
		if p.label, err = labels.Parse(v); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("unable to parse labelSelector %q: %v", v, err))
		}
	}
	if v := q.Get("fieldSelector"); v != "" {
		if p.field, err = fields.ParseSelector(v); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("unable to parse fieldSelector %q: %v", v, err))
		}
		for _, r := range p.field.Requirements() {
			if !req.res.SupportsField(r.Field) {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", r.Field))
			}
		}
	}
	p.watch = q.Get("watch") == "true" || q.Get("watch") == "1"
	p.allowBookmarks = q.Get("allowWatchBookmarks") == "true"
	if v := q.Get("sendInitialEvents"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("sendInitialEvents %q is not a boolean", v))
		}
		p.sendInitialEvents = &b
	}
	if v := q.Get("timeoutSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("timeoutSeconds %q is not a non-negative integer", v))
		}
		p.timeout = time.Duration(n) * time.Second
	}
	p.resourceVersion = q.Get("resourceVersion")
	if p.resourceVersion != "" {
		if n, err := strconv.ParseInt(p.resourceVersion, 10, 64); err != nil || n < 0 {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("resourceVersion %q is not a valid resource version", p.resourceVersion))
		}
	}
	p.rvMatch = metav1.ResourceVersionMatch(q.Get("resourceVersionMatch"))
	switch p.rvMatch {
	case "", metav1.ResourceVersionMatchNotOlderThan, metav1.ResourceVersionMatchExact:
	default:
		return nil, apierrors.NewBadRequest(fmt.Sprintf("resourceVersionMatch %q is not NotOlderThan or Exact", p.rvMatch))
	}
	if p.rvMatch == metav1.ResourceVersionMatchExact && (p.resourceVersion == "" || p.resourceVersion == "0") {
		return nil, apierrors.NewBadRequest("resourceVersionMatch=Exact needs a resourceVersion other than \"\" and \"0\"")
	}
	if v := q.Get("limit"); v != "" && !p.watch {
		if p.limit, err = strconv.ParseInt(v, 10, 64); err != nil || p.limit < 0 {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("limit %q is not a non-negative integer", v))
		}
	}
	if v := q.Get("continue"); v != "" && !p.watch {
		if p.resourceVersion != "" && p.resourceVersion != "0" {
			return nil, apierrors.NewBadRequest("specifying resourceVersion is not allowed when using continue")
		}
		raw, err := base64.RawURLEncoding.DecodeString(v)
		var tok continueToken
		if err == nil {
			err = json.Unmarshal(raw, &tok)
		}
		if err != nil || tok.APIVersion != "meta.k8s.io/v1" || tok.ResourceVersion <= 0 || strings.Contains(tok.StartKey, "/..") {
			return nil, apierrors.NewBadRequest("continue key is not valid; start the list again without it")
		}
		p.continueKey, p.continueRev = tok.StartKey, tok.ResourceVersion
	}
	return p, nil
}

// matches builds the selector predicate for a resource.
func (p *listParams) matches(res *registry.Resource) func(runtime.Object) bool {
	if p.label.Empty() && p.field.Empty() {
		return nil
	}
	return func(obj runtime.Object) bool {
		if !p.label.Empty() && !p.label.Matches(labels.Set(accessor(obj).GetLabels())) {
			return false
		}
		return p.field.Empty() || p.field.Matches(res.Fields(obj))
	}
}

func (s *Server) list(req *request, p *listParams) error {
	ctx := req.r.Context()
	prefix := req.res.Prefix(req.namespace)
	opts := storage.ListOptions{Limit: p.limit, Predicate: p.matches(req.res)}
	var minRev int64
	switch {
	case p.continueKey != "":
		opts.Revision = p.continueRev
		opts.StartKey = prefix + p.continueKey
	case p.rvMatch == metav1.ResourceVersionMatchExact:
		opts.Revision, _ = strconv.ParseInt(p.resourceVersion, 10, 64)
	case p.resourceVersion != "" && p.resourceVersion != "0":
		minRev, _ = strconv.ParseInt(p.resourceVersion, 10, 64)
	}
	result, err := s.listFromCache(ctx, req, p, prefix, opts)
	if result == nil && err == nil {
		result, err = s.store.List(ctx, req.res.Resource, prefix, req.res.New, opts)
	}
	if err != nil {
		if errors.Is(err, storage.ErrCompacted) && p.continueKey != "" {
			return apierrors.NewResourceExpired("the provided continue parameter is too old to display a consistent list result; start a new list without it")
		}
		return err
	}
	if result.Revision < minRev {
		return apierrors.NewTimeoutError(fmt.Sprintf("Too large resource version: %d, current: %d", minRev, result.Revision), 1)
	}
	list := req.res.NewList()
	if err := meta.SetList(list, result.Items); err != nil {
		return err
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return err
	}
	lm.SetResourceVersion(strconv.FormatInt(result.Revision, 10))
	if result.NextKey != "" {
		tok, _ := json.Marshal(continueToken{APIVersion: "meta.k8s.io/v1", ResourceVersion: result.Revision, StartKey: strings.TrimPrefix(result.NextKey, prefix)})
		lm.SetContinue(base64.RawURLEncoding.EncodeToString(tok))
		if opts.Predicate == nil {
			n := result.Remaining
			lm.SetRemainingItemCount(&n)
		}
	}
	return s.writeObjects(req, list, result.Items, lm)
}

// listFromCache serves a list from the watch cache when its semantics allow
// it, and returns nil, nil when the list must go to etcd: the cache is off
// or loading, the list continues a page (its token names an etcd
// revision), asks for an exact revision, or the cache did not catch up in
// time. resourceVersion "0" takes the cache as it is; "" (a consistent
// read) waits for it to reach etcd's current revision, N for N. A first page
// from the cache continues from etcd at the cache's revision.
func (s *Server) listFromCache(ctx context.Context, req *request, p *listParams, prefix string, opts storage.ListOptions) (*storage.ListResult, error) {
	c := s.cfg.Cache.For(req.res)
	if c == nil || p.continueKey != "" || p.rvMatch == metav1.ResourceVersionMatchExact {
		return nil, nil
	}
	minRev, err := s.minRevision(ctx, p.resourceVersion)
	if err != nil {
		return nil, err
	}
	result, err := c.List(ctx, prefix, cacher.ListOptions{MinRevision: minRev, Limit: opts.Limit, Predicate: opts.Predicate})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, nil
	}
	return result, nil
}

// minRevision is the revision a read from the cache must reflect for the
// resourceVersion a client sent: nothing for "0", etcd's current revision
// (read with a quorum) for "", the number otherwise.
func (s *Server) minRevision(ctx context.Context, rv string) (int64, error) {
	switch rv {
	case "0":
		return 0, nil
	case "":
		return s.store.Revision(ctx)
	}
	return strconv.ParseInt(rv, 10, 64)
}
