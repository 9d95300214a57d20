package authz

import (
	"context"
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubeish/kubeish/apiserver/auth/user"
)

// Admit checks a create or update of obj that Authorize allowed, for what
// only the object tells (Kubernetes' RBAC storage checks and the
// NodeRestriction admission plugin):
//   - a Role or ClusterRole may grant only what the user holds (in the
//     role's namespace, or cluster-wide), unless the user may `escalate`
//     it;
//   - a binding may bind only a role whose rules the user holds where the
//     binding applies, unless the user may `bind` that role;
//   - a node creates only its own Node and its own Lease, and changes
//     neither its own taints nor its node-restriction.kubernetes.io/
//     labels (which steer workloads to it).
//
// at is the request's attributes, old the stored object of an update (nil
// for a create); the error is a Forbidden Status.
func (a *Authorizer) Admit(ctx context.Context, at Attributes, obj, old runtime.Object) error {
	u := at.User
	if u == nil {
		return Forbidden(at, "no user")
	}
	if u.InGroup(user.MastersGroup) {
		return nil
	}
	if node, ok := NodeName(u); ok {
		if err := admitNode(node, at, obj, old); err != nil {
			return err
		}
	}
	switch o := obj.(type) {
	case *rbacv1.Role:
		return a.checkEscalation(ctx, at, "roles", o.Namespace, o.Name, o.Rules)
	case *rbacv1.ClusterRole:
		return a.checkEscalation(ctx, at, "clusterroles", "", o.Name, o.Rules)
	case *rbacv1.RoleBinding:
		return a.checkBind(ctx, at, o.Namespace, o.Name, "rolebindings", o.RoleRef)
	case *rbacv1.ClusterRoleBinding:
		return a.checkBind(ctx, at, "", o.Name, "clusterrolebindings", o.RoleRef)
	}
	return nil
}

func (a *Authorizer) checkEscalation(ctx context.Context, at Attributes, resource, ns, name string, rules []rbacv1.PolicyRule) error {
	held, err := a.RulesFor(ctx, at.User, ns)
	if err != nil {
		return err
	}
	ok, missing := Covers(held, rules)
	if ok {
		return nil
	}
	esc := Attributes{User: at.User, Verb: VerbEscalate, APIGroup: rbacv1.GroupName, Resource: resource,
		Namespace: ns, Name: name, ResourceRequest: true}
	if allowed, _, err := a.Authorize(ctx, esc); err != nil || allowed {
		return err
	}
	return notHeld(at.User, schema.GroupResource{Group: rbacv1.GroupName, Resource: resource}, name, missing)
}

func (a *Authorizer) checkBind(ctx context.Context, at Attributes, ns, name, resource string, ref rbacv1.RoleRef) error {
	gr := schema.GroupResource{Group: rbacv1.GroupName, Resource: resource}
	var rules []rbacv1.PolicyRule
	found := false
	switch ref.Kind {
	case "ClusterRole":
		obj, err := a.objs.get(ctx, a.clusterRoles, "", ref.Name, true)
		if err != nil {
			return err
		}
		if obj != nil {
			rules, found = obj.(*rbacv1.ClusterRole).Rules, true
		}
	case "Role":
		obj, err := a.objs.get(ctx, a.roles, ns, ref.Name, true)
		if err != nil {
			return err
		}
		if obj != nil {
			rules, found = obj.(*rbacv1.Role).Rules, true
		}
	}
	var missing []rbacv1.PolicyRule
	if found {
		held, err := a.RulesFor(ctx, at.User, ns)
		if err != nil {
			return err
		}
		var ok bool
		if ok, missing = Covers(held, rules); ok {
			return nil
		}
	}
	roleRes := "clusterroles"
	if ref.Kind == "Role" {
		roleRes = "roles"
	}
	bind := Attributes{User: at.User, Verb: VerbBind, APIGroup: rbacv1.GroupName, Resource: roleRes,
		Namespace: ns, Name: ref.Name, ResourceRequest: true}
	if allowed, _, err := a.Authorize(ctx, bind); err != nil || allowed {
		return err
	}
	if !found {
		return apierrors.NewForbidden(gr, name, fmt.Errorf("user %q cannot bind %s %q: it does not exist, and binding it needs the %q verb on it",
			at.User.Name, ref.Kind, ref.Name, VerbBind))
	}
	return notHeld(at.User, gr, name, missing)
}

// notHeld is Kubernetes' escalation refusal.
func notHeld(u *user.Info, gr schema.GroupResource, name string, missing []rbacv1.PolicyRule) error {
	const show = 10
	var parts []string
	for i, r := range missing {
		if i == show {
			parts = append(parts, fmt.Sprintf("… and %d more", len(missing)-show))
			break
		}
		parts = append(parts, describeRule(r))
	}
	return apierrors.NewForbidden(gr, name, fmt.Errorf("user %q (groups=%q) is attempting to grant RBAC permissions not currently held:\n%s",
		u.Name, u.Groups, strings.Join(parts, "\n")))
}
