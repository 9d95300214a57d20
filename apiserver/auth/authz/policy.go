package authz

import (
	"slices"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubeish/kubeish/apiserver/auth/user"
	"github.com/kubeish/kubeish/apiserver/registry"
)

// Built-in users the policy binds (pkg/pki issues their certificates).
const (
	ControllerUser = "system:kube-controller-manager"
	SchedulerUser  = "system:kube-scheduler"
	// MonitoringGroup may read /metrics, as in Kubernetes.
	MonitoringGroup = "system:monitoring"
)

var (
	readOnly  = []string{VerbGet, VerbList, VerbWatch}
	readWrite = []string{VerbGet, VerbList, VerbWatch, VerbCreate, VerbUpdate, VerbPatch, VerbDelete, VerbDeleteCollection}
)

func rule(verbs []string, group string, resources ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, APIGroups: []string{group}, Resources: resources}
}

func urls(verbs []string, paths ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{Verbs: verbs, NonResourceURLs: paths}
}

// BootstrapPolicy returns the ClusterRoles and ClusterRoleBindings the
// apiserver creates at start when they are missing (an edited one is left
// as it is):
//   - cluster-admin: everything, bound to group system:masters;
//   - admin and edit: every namespaced workload kind (admin also Roles and
//     RoleBindings), for RoleBindings in a namespace;
//   - view: get, list, watch on every kind but Secrets;
//   - system:discovery: discovery, /version, /openapi and the health
//     checks, bound to system:authenticated;
//   - system:public-info-viewer: /healthz, /livez, /readyz, /version for
//     everyone, anonymous included;
//   - system:monitoring: /metrics, bound to group system:monitoring and to
//     anonymous (which the authentication filter lets through to /metrics
//     only when told to);
//   - system:basic-user: SelfSubjectAccessReviews, bound to
//     system:authenticated;
//   - system:kube-controller-manager and system:kube-scheduler: what the
//     controller and scheduler call, bound to their users.
func BootstrapPolicy(res *registry.Set) []runtime.Object {
	meta := func(name string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name,
			Labels:      map[string]string{"kubernetes.io/bootstrapping": "rbac-defaults"},
			Annotations: map[string]string{"rbac.authorization.kubernetes.io/autoupdate": "true"}}
	}
	role := func(name string, rules ...rbacv1.PolicyRule) *rbacv1.ClusterRole {
		return &rbacv1.ClusterRole{ObjectMeta: meta(name), Rules: rules}
	}
	binding := func(name, roleName string, subjects ...rbacv1.Subject) *rbacv1.ClusterRoleBinding {
		return &rbacv1.ClusterRoleBinding{ObjectMeta: meta(name), Subjects: subjects,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: roleName}}
	}
	group := func(name string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: name}
	}
	usr := func(name string) rbacv1.Subject {
		return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
	}

	// view reads every kind served (and its status and scale, pods' logs)
	// except Secrets, and the resource metrics.
	var view []rbacv1.PolicyRule
	byGroup := map[string][]string{}
	var groups []string
	for _, r := range res.All() {
		if r.Group == "" && r.Resource == "secrets" {
			continue
		}
		if _, ok := byGroup[r.Group]; !ok {
			groups = append(groups, r.Group)
		}
		names := []string{r.Resource}
		if r.Status {
			names = append(names, r.Resource+"/status")
		}
		if r.Scale {
			names = append(names, r.Resource+"/scale")
		}
		if r.Group == "" && r.Resource == "pods" {
			names = append(names, "pods/log")
		}
		byGroup[r.Group] = append(byGroup[r.Group], names...)
	}
	for _, g := range groups {
		view = append(view, rule(readOnly, g, byGroup[g]...))
	}
	view = append(view, rule([]string{VerbGet, VerbList}, "metrics.k8s.io", "pods", "nodes"))

	// edit writes the namespaced workload kinds, reads the rest as view.
	edit := []rbacv1.PolicyRule{
		rule(readWrite, "", "pods", "services", "endpoints", "configmaps", "secrets"),
		rule([]string{VerbGet}, "", "pods/log"),
		rule(readWrite, "apps", "deployments", "replicasets"),
		rule([]string{VerbGet, VerbUpdate, VerbPatch}, "apps", "deployments/scale", "replicasets/scale"),
		rule(readWrite, "autoscaling", "horizontalpodautoscalers"),
		rule(readWrite, "discovery.k8s.io", "endpointslices"),
	}
	edit = append(edit, slices.Clone(view)...)
	admin := append(slices.Clone(edit), rule(readWrite, rbacv1.GroupName, "roles", "rolebindings"))

	controller := role(ControllerUser,
		rule(readWrite, "", "pods"),
		rule([]string{VerbUpdate, VerbPatch}, "", "pods/status"),
		rule([]string{VerbGet, VerbList, VerbWatch, VerbUpdate, VerbPatch, VerbDelete, VerbDeleteCollection}, "", "services", "configmaps", "secrets"),
		rule(readWrite, "", "endpoints", "events"),
		rule([]string{VerbGet, VerbList, VerbWatch, VerbUpdate, VerbPatch, VerbDelete}, "", "nodes", "namespaces"),
		rule([]string{VerbUpdate, VerbPatch}, "", "nodes/status", "namespaces/status", "namespaces/finalize"),
		rule(readWrite, "apps", "deployments", "replicasets"),
		rule([]string{VerbGet, VerbUpdate, VerbPatch}, "apps", "deployments/status", "replicasets/status", "deployments/scale", "replicasets/scale"),
		rule(readWrite, "discovery.k8s.io", "endpointslices"),
		// Its leader Lease in kube-system, and the node Leases (and any
		// namespace's, when the namespace goes).
		rule(readWrite, "coordination.k8s.io", "leases"),
		rule([]string{VerbGet, VerbList, VerbWatch, VerbUpdate, VerbPatch, VerbDelete, VerbDeleteCollection}, "autoscaling", "horizontalpodautoscalers"),
		rule([]string{VerbUpdate, VerbPatch}, "autoscaling", "horizontalpodautoscalers/status"),
		rule([]string{VerbGet, VerbList}, "metrics.k8s.io", "pods", "nodes"),
		// What a namespace's deletion removes.
		rule([]string{VerbGet, VerbList, VerbWatch, VerbDelete, VerbDeleteCollection}, rbacv1.GroupName, "roles", "rolebindings"),
	)
	schedulerLease := rule([]string{VerbGet, VerbUpdate, VerbPatch}, "coordination.k8s.io", "leases")
	schedulerLease.ResourceNames = []string{"kube-scheduler"}
	scheduler := role(SchedulerUser,
		rule(readOnly, "", "pods", "nodes", "namespaces"),
		rule([]string{VerbCreate}, "", "pods/binding"),
		rule([]string{VerbUpdate, VerbPatch}, "", "pods/status"),
		rule([]string{VerbCreate, VerbUpdate, VerbPatch}, "", "events"),
		rule([]string{VerbCreate}, "coordination.k8s.io", "leases"),
		schedulerLease,
	)

	return []runtime.Object{
		role("cluster-admin",
			rule([]string{rbacv1.VerbAll}, rbacv1.APIGroupAll, rbacv1.ResourceAll),
			urls([]string{rbacv1.VerbAll}, rbacv1.NonResourceAll)),
		role("admin", admin...),
		role("edit", edit...),
		role("view", view...),
		role("system:discovery", urls([]string{VerbGet}, "/api", "/api/*", "/apis", "/apis/*",
			"/version", "/version/", "/openapi", "/openapi/*", "/healthz", "/livez", "/readyz")),
		role("system:public-info-viewer", urls([]string{VerbGet}, "/healthz", "/livez", "/readyz", "/version", "/version/")),
		role("system:monitoring", urls([]string{VerbGet}, "/metrics", "/healthz", "/livez", "/readyz")),
		role("system:basic-user", rule([]string{VerbCreate}, "authorization.k8s.io", "selfsubjectaccessreviews", "selfsubjectrulesreviews")),
		controller,
		scheduler,
		binding("cluster-admin", "cluster-admin", group(user.MastersGroup)),
		binding("system:discovery", "system:discovery", group(user.AllAuthenticated)),
		binding("system:public-info-viewer", "system:public-info-viewer", group(user.AllAuthenticated), group(user.AllUnauthenticated)),
		binding("system:monitoring", "system:monitoring", group(MonitoringGroup), group(user.AllUnauthenticated)),
		binding("system:basic-user", "system:basic-user", group(user.AllAuthenticated)),
		binding(ControllerUser, ControllerUser, usr(ControllerUser)),
		binding(SchedulerUser, SchedulerUser, usr(SchedulerUser)),
	}
}
