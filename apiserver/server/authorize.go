package server

import (
	"context"
	"net/http"
	"strings"

	"go.uber.org/zap"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kubeish/kubeish/apiserver/auth/authz"
	"github.com/kubeish/kubeish/apiserver/auth/user"
)

// authorizationGV serves SelfSubjectAccessReview, answered and never
// stored.
var authorizationGV = authorizationv1.SchemeGroupVersion

// resourceAttributes are the authorization attributes of an API call on a
// resource, with Kubernetes' verbs: a GET of a collection is list (watch
// with ?watch=true), of one object get (watch); POST create; PUT update;
// PATCH patch; DELETE of a collection deletecollection, of one object
// delete.
func resourceAttributes(req *request) authz.Attributes {
	watch := false
	if q := req.r.URL.Query().Get("watch"); q == "true" || q == "1" {
		watch = true
	}
	var verb string
	switch req.r.Method {
	case http.MethodGet, http.MethodHead:
		switch {
		case watch && req.sub == "":
			verb = authz.VerbWatch
		case req.name == "":
			verb = authz.VerbList
		default:
			verb = authz.VerbGet
		}
	case http.MethodPost:
		verb = authz.VerbCreate
	case http.MethodPut:
		verb = authz.VerbUpdate
	case http.MethodPatch:
		verb = authz.VerbPatch
	case http.MethodDelete:
		verb = authz.VerbDelete
		if req.name == "" {
			verb = authz.VerbDeleteCollection
		}
	default:
		verb = strings.ToLower(req.r.Method)
	}
	return authz.Attributes{
		Verb: verb, APIGroup: req.res.Group, Resource: req.res.Resource, Subresource: req.sub,
		Namespace: req.namespace, Name: req.name, ResourceRequest: true,
	}
}

// metricVerb is the verb label of apiserver_request_total for a request
// refused before its handler ran.
func metricVerb(verb string) string {
	switch verb {
	case authz.VerbCreate:
		return "POST"
	case authz.VerbUpdate:
		return "PUT"
	case authz.VerbDeleteCollection:
		return "DELETE"
	}
	return strings.ToUpper(verb)
}

// authorize decides at for the request's user (set into at) and returns
// the 403 to answer when it is refused. A request without a user (no
// authentication ran) is refused too.
func (s *Server) authorize(ctx context.Context, at *authz.Attributes) error {
	at.User = user.From(ctx)
	if at.User == nil {
		return authz.Forbidden(*at, "no authenticated user")
	}
	allowed, reason, err := s.authz.Authorize(ctx, *at)
	if err != nil {
		return err
	}
	if !allowed {
		if ce := s.log.Check(zap.DebugLevel, "forbidden"); ce != nil {
			ce.Write(zap.String("user", at.User.Name), zap.String("verb", at.Verb), zap.String("resource", at.Resource),
				zap.String("subresource", at.Subresource), zap.String("namespace", at.Namespace), zap.String("path", at.Path),
				zap.String("reason", reason))
		}
		return authz.Forbidden(*at, reason)
	}
	return nil
}

// admit runs the checks of a write that need its object (RBAC escalation,
// NodeRestriction) for creates, updates and patches; old is the stored
// object of an update. A write that leaves a role's rules, or a binding's
// role and subjects, as they were needs no check (the garbage collector
// editing owner references).
func (s *Server) admit(ctx context.Context, at authz.Attributes, obj, old runtime.Object) error {
	switch at.Verb {
	case authz.VerbCreate, authz.VerbUpdate, authz.VerbPatch:
	default:
		return nil
	}
	if at.User == nil {
		at.User = user.From(ctx)
	}
	if old != nil && sameGrant(obj, old) {
		return nil
	}
	return s.authz.Admit(ctx, at, obj, old)
}

// sameGrant reports whether obj grants what old did: the same rules of a
// role, the same role and subjects of a binding. Other kinds grant nothing.
func sameGrant(obj, old runtime.Object) bool {
	a, b := grantOf(obj), grantOf(old)
	return a != nil && b != nil && equality.Semantic.DeepEqual(a, b)
}

func grantOf(obj runtime.Object) any {
	switch o := obj.(type) {
	case *rbacv1.Role:
		return o.Rules
	case *rbacv1.ClusterRole:
		return o.Rules
	case *rbacv1.RoleBinding:
		return []any{o.RoleRef, o.Subjects}
	case *rbacv1.ClusterRoleBinding:
		return []any{o.RoleRef, o.Subjects}
	}
	return nil
}

// nonResource wraps a handler of a non-resource path (discovery, /version,
// /openapi, /metrics, health checks, /debug/pprof) in its authorization:
// the verb is the lower-case HTTP method, as in Kubernetes.
func (s *Server) nonResource(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := nonResourceAttributes(r)
		if err := s.authorize(r.Context(), &at); err != nil {
			s.instrument(w, r, "", "", func(http.ResponseWriter) (string, error) { return r.Method, err })
			return
		}
		h.ServeHTTP(w, r)
	})
}

func nonResourceAttributes(r *http.Request) authz.Attributes {
	verb := strings.ToLower(r.Method)
	if r.Method == http.MethodHead {
		verb = authz.VerbGet
	}
	return authz.Attributes{Verb: verb, Path: r.URL.Path}
}

// selfSubjectAccessReview answers whether the caller may do what the
// review's spec describes (kubectl auth can-i).
func (s *Server) selfSubjectAccessReview(w http.ResponseWriter, r *http.Request) {
	gr := schema.GroupResource{Group: authorizationGV.Group, Resource: "selfsubjectaccessreviews"}
	s.instrument(w, r, gr.Resource, "", func(w http.ResponseWriter) (string, error) {
		review := &authorizationv1.SelfSubjectAccessReview{}
		caller, err := s.readReview(r, gr, "SelfSubjectAccessReview", review)
		if err != nil {
			return r.Method, err
		}
		spec := review.Spec
		var ask authz.Attributes
		switch {
		case spec.ResourceAttributes != nil && spec.NonResourceAttributes != nil:
			return "POST", invalidReview(field.Invalid(field.NewPath("spec", "nonResourceAttributes"), "",
				"cannot be specified in combination with resourceAttributes"))
		case spec.ResourceAttributes != nil:
			ra := spec.ResourceAttributes
			ask = authz.Attributes{Verb: ra.Verb, APIGroup: ra.Group, Resource: ra.Resource, Subresource: ra.Subresource,
				Namespace: ra.Namespace, Name: ra.Name, ResourceRequest: true}
		case spec.NonResourceAttributes != nil:
			ask = authz.Attributes{Verb: spec.NonResourceAttributes.Verb, Path: spec.NonResourceAttributes.Path}
		default:
			return "POST", invalidReview(field.Required(field.NewPath("spec", "resourceAttributes"),
				"exactly one of nonResourceAttributes or resourceAttributes must be specified"))
		}
		ask.User = caller
		allowed, reason, err := s.authz.Authorize(r.Context(), ask)
		if err != nil {
			return "POST", err
		}
		review.Status = authorizationv1.SubjectAccessReviewStatus{Allowed: allowed, Reason: reason}
		review.ObjectMeta = metav1.ObjectMeta{CreationTimestamp: review.CreationTimestamp}
		s.writeObject(w, r, http.StatusCreated, review)
		return "POST", nil
	})
}

// readReview is the start both reviews share: only POST, the caller may
// create the review, and the body decodes into review. It returns the
// caller.
func (s *Server) readReview(r *http.Request, gr schema.GroupResource, kind string, review runtime.Object) (*user.Info, error) {
	if r.Method != http.MethodPost {
		return nil, apierrors.NewMethodNotSupported(gr, strings.ToLower(r.Method))
	}
	at := authz.Attributes{Verb: authz.VerbCreate, APIGroup: gr.Group, Resource: gr.Resource, ResourceRequest: true}
	if err := s.authorize(r.Context(), &at); err != nil {
		return nil, err
	}
	mode, err := parseFieldValidation(r)
	if err != nil {
		return nil, err
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if _, err := s.codecs.decode(r.Header.Get("Content-Type"), body, authorizationGV.WithKind(kind), review, mode); err != nil {
		return nil, err
	}
	return at.User, nil
}

func invalidReview(e *field.Error) error {
	return invalid(authorizationGV.WithKind("SelfSubjectAccessReview").GroupKind(), "", field.ErrorList{e})
}

func authorizationResources() []metav1.APIResource {
	return []metav1.APIResource{
		{Name: "selfsubjectaccessreviews", Kind: "SelfSubjectAccessReview", Verbs: metav1.Verbs{"create"}},
		{Name: "selfsubjectrulesreviews", Kind: "SelfSubjectRulesReview", Verbs: metav1.Verbs{"create"}},
	}
}

// selfSubjectRulesReview lists what the caller may do in a namespace
// (kubectl auth can-i --list): the rules of its bindings there and
// cluster-wide. What system:masters and the node authorizer allow is not
// made of rules: the answer then says so (incomplete, or everything).
func (s *Server) selfSubjectRulesReview(w http.ResponseWriter, r *http.Request) {
	gr := schema.GroupResource{Group: authorizationGV.Group, Resource: "selfsubjectrulesreviews"}
	s.instrument(w, r, gr.Resource, "", func(w http.ResponseWriter) (string, error) {
		review := &authorizationv1.SelfSubjectRulesReview{}
		caller, err := s.readReview(r, gr, "SelfSubjectRulesReview", review)
		if err != nil {
			return r.Method, err
		}
		var rules []rbacv1.PolicyRule
		if caller.InGroup(user.MastersGroup) {
			rules = []rbacv1.PolicyRule{
				{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}},
				{Verbs: []string{"*"}, NonResourceURLs: []string{"*"}},
			}
		} else if rules, err = s.authz.RulesFor(r.Context(), caller, review.Spec.Namespace); err != nil {
			return "POST", err
		}
		st := authorizationv1.SubjectRulesReviewStatus{ResourceRules: []authorizationv1.ResourceRule{}, NonResourceRules: []authorizationv1.NonResourceRule{}}
		for _, rule := range rules {
			if len(rule.NonResourceURLs) > 0 {
				st.NonResourceRules = append(st.NonResourceRules, authorizationv1.NonResourceRule{Verbs: rule.Verbs, NonResourceURLs: rule.NonResourceURLs})
				continue
			}
			st.ResourceRules = append(st.ResourceRules, authorizationv1.ResourceRule{Verbs: rule.Verbs, APIGroups: rule.APIGroups,
				Resources: rule.Resources, ResourceNames: rule.ResourceNames})
		}
		if _, ok := authz.NodeName(caller); ok {
			st.Incomplete = true
			st.EvaluationError = "the node authorizer's rights depend on the objects and are not listed"
		}
		review.Status = st
		review.ObjectMeta = metav1.ObjectMeta{CreationTimestamp: review.CreationTimestamp}
		s.writeObject(w, r, http.StatusCreated, review)
		return "POST", nil
	})
}
