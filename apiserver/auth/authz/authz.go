// Package authz decides whether a user may do what a request asks, as
// Kubernetes' authorizers do, in this order: members of system:masters may
// do anything; the node authorizer answers for nodes (users
// system:node:<name> in group system:nodes) what their own pods and Node
// need; RBAC answers from the Role, ClusterRole, RoleBinding and
// ClusterRoleBinding objects in the API. It also checks the RBAC
// escalation rules (a user grants only what it holds) and NodeRestriction
// (a node writes only its own objects), and holds the built-in policy the
// apiserver creates at start.
package authz

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubeish/kubeish/apiserver/auth/user"
	"github.com/kubeish/kubeish/apiserver/cacher"
	"github.com/kubeish/kubeish/apiserver/registry"
	"github.com/kubeish/kubeish/apiserver/storage"
)

// Kubernetes' verbs, as requests map to them.
const (
	VerbGet              = "get"
	VerbList             = "list"
	VerbWatch            = "watch"
	VerbCreate           = "create"
	VerbUpdate           = "update"
	VerbPatch            = "patch"
	VerbDelete           = "delete"
	VerbDeleteCollection = "deletecollection"
	// VerbEscalate on a role lets a user write rules it does not hold.
	VerbEscalate = "escalate"
	// VerbBind on a role lets a user bind it without holding its rules.
	VerbBind = "bind"
)

// Attributes describe one request to authorize.
type Attributes struct {
	User *user.Info
	// Verb is a Kubernetes verb for a resource request (get, list, watch,
	// create, update, patch, delete, deletecollection), the lower-case
	// HTTP method for a non-resource request (get, post, put, …).
	Verb            string
	APIGroup        string
	Resource        string
	Subresource     string
	Namespace       string
	Name            string
	ResourceRequest bool
	// Path is the URL path of a non-resource request.
	Path string
}

// Config is what an Authorizer needs.
type Config struct {
	Store     *storage.Store
	Resources *registry.Set
	// Cache, when set, is where the RBAC objects and pods are read.
	Cache  *cacher.Cacher
	Logger *zap.Logger
	// SnapshotTTL bounds how old the RBAC objects read without a watch
	// cache may be. Default DefaultSnapshotTTL.
	SnapshotTTL time.Duration
}

// DefaultSnapshotTTL is how long a snapshot of the RBAC objects serves
// without a watch cache: a new binding takes effect within it.
const DefaultSnapshotTTL = 500 * time.Millisecond

// Authorizer decides requests. It is safe for concurrent use.
type Authorizer struct {
	objs *objects
	log  *zap.Logger

	roles, roleBindings, clusterRoles, clusterRoleBindings *registry.Resource
	pods, nodes, leases, secrets, configMaps               *registry.Resource
}

// New returns an Authorizer over cfg's store (or cache).
func New(cfg Config) (*Authorizer, error) {
	if cfg.Store == nil || cfg.Resources == nil || cfg.Logger == nil {
		return nil, errors.New("authz: store, resources and logger are required")
	}
	if cfg.SnapshotTTL <= 0 {
		cfg.SnapshotTTL = DefaultSnapshotTTL
	}
	a := &Authorizer{objs: &objects{store: cfg.Store, cache: cfg.Cache, ttl: cfg.SnapshotTTL}, log: cfg.Logger}
	for _, r := range []struct {
		into     **registry.Resource
		group, n string
	}{
		{&a.roles, rbacv1.GroupName, "roles"}, {&a.roleBindings, rbacv1.GroupName, "rolebindings"},
		{&a.clusterRoles, rbacv1.GroupName, "clusterroles"}, {&a.clusterRoleBindings, rbacv1.GroupName, "clusterrolebindings"},
		{&a.pods, "", "pods"}, {&a.nodes, "", "nodes"}, {&a.secrets, "", "secrets"}, {&a.configMaps, "", "configmaps"},
		{&a.leases, "coordination.k8s.io", "leases"},
	} {
		res, ok := cfg.Resources.Get(r.group, r.n)
		if !ok {
			return nil, fmt.Errorf("authz: resource %s.%s is not served", r.n, r.group)
		}
		*r.into = res
	}
	return a, nil
}

// Authorize decides a request. reason says why it was allowed, or why the
// node authorizer refused it. An error (etcd unreachable) decides nothing.
func (a *Authorizer) Authorize(ctx context.Context, at Attributes) (allowed bool, reason string, err error) {
	u := at.User
	if u == nil {
		return false, "no user", nil
	}
	if u.InGroup(user.MastersGroup) {
		return true, "member of " + user.MastersGroup, nil
	}
	nodeReason := ""
	if node, ok := NodeName(u); ok {
		allowed, reason, err := a.authorizeNode(ctx, node, at)
		if err != nil || allowed {
			return allowed, reason, err
		}
		nodeReason = reason
	}
	allowed, reason, err = a.authorizeRBAC(ctx, at)
	if err != nil || allowed {
		return allowed, reason, err
	}
	return false, nodeReason, nil
}

// NodeName returns the node a user is, when it is one: named
// system:node:<name> and in group system:nodes.
func NodeName(u *user.Info) (string, bool) {
	if u == nil || !u.InGroup(user.NodesGroup) || !strings.HasPrefix(u.Name, user.NodeUserPrefix) {
		return "", false
	}
	name := strings.TrimPrefix(u.Name, user.NodeUserPrefix)
	return name, name != ""
}

// authorizeRBAC allows when some rule granted to the user by a binding
// matches: ClusterRoleBindings everywhere, RoleBindings in their namespace.
func (a *Authorizer) authorizeRBAC(ctx context.Context, at Attributes) (bool, string, error) {
	reason := ""
	err := a.visitRules(ctx, at.User, at.Namespace, func(source func() string, rule *rbacv1.PolicyRule) bool {
		if RuleAllows(at, rule) {
			reason = "RBAC: allowed by " + source()
			return false
		}
		return true
	})
	return reason != "", reason, err
}

// RulesFor returns every rule granted to u in namespace ns (cluster-wide
// rules only when ns is ""): what u holds, for the escalation check.
func (a *Authorizer) RulesFor(ctx context.Context, u *user.Info, ns string) ([]rbacv1.PolicyRule, error) {
	var rules []rbacv1.PolicyRule
	err := a.visitRules(ctx, u, ns, func(_ func() string, rule *rbacv1.PolicyRule) bool {
		rules = append(rules, *rule)
		return true
	})
	return rules, err
}

// visitRules calls visit with each rule granted to u in ns, until it
// returns false.
func (a *Authorizer) visitRules(ctx context.Context, u *user.Info, ns string, visit func(source func() string, rule *rbacv1.PolicyRule) bool) error {
	crbs, err := a.objs.list(ctx, a.clusterRoleBindings, a.clusterRoleBindings.Prefix(""), nil, true)
	if err != nil {
		return err
	}
	for _, obj := range crbs {
		b := obj.(*rbacv1.ClusterRoleBinding)
		subj, ok := matchSubject(u, b.Subjects, "")
		if !ok {
			continue
		}
		rules, err := a.roleRules(ctx, b.RoleRef, "")
		if err != nil {
			return err
		}
		// Rendered only for the rule that allows (every request passes here).
		source := func() string {
			return fmt.Sprintf("ClusterRoleBinding %q of ClusterRole %q to %s", b.Name, b.RoleRef.Name, describeSubject(subj))
		}
		for i := range rules {
			if !visit(source, &rules[i]) {
				return nil
			}
		}
	}
	if ns == "" {
		return nil
	}
	rbs, err := a.objs.list(ctx, a.roleBindings, a.roleBindings.Prefix(ns), nil, true)
	if err != nil {
		return err
	}
	for _, obj := range rbs {
		b := obj.(*rbacv1.RoleBinding)
		subj, ok := matchSubject(u, b.Subjects, ns)
		if !ok {
			continue
		}
		rules, err := a.roleRules(ctx, b.RoleRef, ns)
		if err != nil {
			return err
		}
		source := func() string {
			return fmt.Sprintf("RoleBinding %q of %s %q to %s", b.Namespace+"/"+b.Name, b.RoleRef.Kind, b.RoleRef.Name, describeSubject(subj))
		}
		for i := range rules {
			if !visit(source, &rules[i]) {
				return nil
			}
		}
	}
	return nil
}

// roleRules returns the rules of the role ref names (a Role in ns, or a
// ClusterRole); a missing role grants nothing.
func (a *Authorizer) roleRules(ctx context.Context, ref rbacv1.RoleRef, ns string) ([]rbacv1.PolicyRule, error) {
	switch ref.Kind {
	case "ClusterRole":
		obj, err := a.objs.get(ctx, a.clusterRoles, "", ref.Name, true)
		if obj == nil || err != nil {
			return nil, err
		}
		return obj.(*rbacv1.ClusterRole).Rules, nil
	case "Role":
		if ns == "" {
			return nil, nil
		}
		obj, err := a.objs.get(ctx, a.roles, ns, ref.Name, true)
		if obj == nil || err != nil {
			return nil, err
		}
		return obj.(*rbacv1.Role).Rules, nil
	}
	return nil, nil
}

// matchSubject finds the subject that is u (a service account's namespace
// filled in from the binding's when it has none).
func matchSubject(u *user.Info, subjects []rbacv1.Subject, bindingNS string) (rbacv1.Subject, bool) {
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.UserKind:
			if s.Name == u.Name {
				return s, true
			}
		case rbacv1.GroupKind:
			if u.InGroup(s.Name) {
				return s, true
			}
		case rbacv1.ServiceAccountKind:
			if s.Namespace == "" {
				s.Namespace = bindingNS
			}
			if s.Namespace != "" && u.Name == "system:serviceaccount:"+s.Namespace+":"+s.Name {
				return s, true
			}
		}
	}
	return rbacv1.Subject{}, false
}

// describeSubject renders a subject for a decision's reason.
func describeSubject(s rbacv1.Subject) string {
	if s.Kind == rbacv1.ServiceAccountKind {
		return fmt.Sprintf("ServiceAccount %q", s.Namespace+"/"+s.Name)
	}
	return fmt.Sprintf("%s %q", s.Kind, s.Name)
}

// Forbidden is the 403 for a refused request, worded as Kubernetes words
// it: `pods "x" is forbidden: User "alice" cannot get resource "pods" in
// API group "" in the namespace "default"`, then the reason if any.
func Forbidden(at Attributes, reason string) error {
	name := ""
	if at.User != nil {
		name = at.User.Name
	}
	var msg string
	var gr schema.GroupResource
	switch {
	case !at.ResourceRequest:
		msg = fmt.Sprintf("User %q cannot %s path %q", name, at.Verb, at.Path)
	default:
		gr = schema.GroupResource{Group: at.APIGroup, Resource: at.Resource}
		resource := at.Resource
		if at.Subresource != "" {
			resource += "/" + at.Subresource
		}
		if at.Namespace != "" {
			msg = fmt.Sprintf("User %q cannot %s resource %q in API group %q in the namespace %q", name, at.Verb, resource, at.APIGroup, at.Namespace)
		} else {
			msg = fmt.Sprintf("User %q cannot %s resource %q in API group %q at the cluster scope", name, at.Verb, resource, at.APIGroup)
		}
	}
	if reason != "" {
		msg += ": " + reason
	}
	return apierrors.NewForbidden(gr, at.Name, errors.New(msg))
}

func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }
