package server_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubeish/kubeish/apiserver/auth/user"
	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testenv"
)

// asTestUser wraps a server built in a test (no authentication filter) so
// that requests carry the user named by the X-Test-User and X-Test-Groups
// headers: a member of system:masters without them, none with
// X-Test-User: none.
func asTestUser(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.Header.Get("X-Test-User")
		switch name {
		case "none":
		case "":
			r = r.WithContext(user.With(r.Context(), &user.Info{Name: "test-admin", Groups: []string{user.MastersGroup, user.AllAuthenticated}}))
		default:
			var groups []string
			if g := r.Header.Get("X-Test-Groups"); g != "" {
				groups = strings.Split(g, ",")
			}
			groups = append(groups, user.AllAuthenticated)
			r = r.WithContext(user.With(r.Context(), &user.Info{Name: name, Groups: groups}))
		}
		h.ServeHTTP(w, r)
	})
}

// client returns a clientset authenticating as name in groups (a client
// certificate from the test cluster's CA).
func client(t *testing.T, e *testenv.Env, name string, groups ...string) kubernetes.Interface {
	t.Helper()
	return kubernetes.NewForConfigOrDie(e.ConfigFor(t, name, groups...))
}

func bindClusterRole(t *testing.T, admin kubernetes.Interface, name, role string, subjects ...rbacv1.Subject) {
	t.Helper()
	_, err := admin.RbacV1().ClusterRoleBindings().Create(context.Background(), &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subjects,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("binding %s: %v", role, err)
	}
}

func userSubject(name string) rbacv1.Subject {
	return rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}
}

func wantForbidden(t *testing.T, what string, err error) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Fatalf("%s: got %v, want 403 Forbidden", what, err)
	}
}

func wantOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// pollAllowed waits until f stops answering 403 (a binding took effect).
func pollAllowed(t *testing.T, what string, f func() error) {
	t.Helper()
	poll.Until(t, 5*time.Second, what, func() (bool, error) {
		err := f()
		if apierrors.IsForbidden(err) {
			return false, nil
		}
		return true, err
	})
}

func TestAuthzViewerReadsButDoesNotWriteNorReadSecrets(t *testing.T) {
	e := testenv.Start(t)
	ctx := context.Background()
	admin := client(t, e, "kubernetes-admin", user.MastersGroup)
	_, err := admin.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"},
		StringData: map[string]string{"password": "hunter2"}}, metav1.CreateOptions{})
	wantOK(t, "creating a secret", err)
	bindClusterRole(t, admin, "viewer", "view", userSubject("viewer"))
	viewer := client(t, e, "viewer")

	pollAllowed(t, "the viewer to list pods", func() error {
		_, err := viewer.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return err
	})
	_, err = viewer.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	wantOK(t, "viewer lists nodes", err)
	_, err = viewer.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.CreateOptions{})
	wantForbidden(t, "viewer creates a configmap", err)
	_, err = viewer.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x:1"}}}}, metav1.CreateOptions{})
	wantForbidden(t, "viewer creates a pod", err)
	_, err = viewer.CoreV1().Secrets("default").Get(ctx, "s", metav1.GetOptions{})
	wantForbidden(t, "viewer reads a secret", err)
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the refusal shows the secret: %v", err)
	}
	_, err = viewer.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	wantForbidden(t, "viewer lists secrets", err)
	err = viewer.CoreV1().Pods("default").Delete(ctx, "any", metav1.DeleteOptions{})
	wantForbidden(t, "viewer deletes a pod", err)
}

func TestAuthzForbiddenMessageAndBindingWithoutRestart(t *testing.T) {
	e := testenv.Start(t)
	ctx := context.Background()
	admin := client(t, e, "kubernetes-admin", user.MastersGroup)
	alice := client(t, e, "alice")

	_, err := alice.CoreV1().Pods("default").Get(ctx, "x", metav1.GetOptions{})
	wantForbidden(t, "alice gets a pod", err)
	want := `pods "x" is forbidden: User "alice" cannot get resource "pods" in API group "" in the namespace "default"`
	if err.Error() != want {
		t.Errorf("message:\n got %s\nwant %s", err.Error(), want)
	}
	_, err = alice.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	want = `deployments.apps is forbidden: User "alice" cannot list resource "deployments" in API group "apps" at the cluster scope`
	if err == nil || err.Error() != want {
		t.Errorf("message:\n got %v\nwant %s", err, want)
	}
	// Discovery is everyone's (system:authenticated).
	_, err = alice.Discovery().ServerGroups()
	wantOK(t, "alice reads discovery", err)

	_, err = admin.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "alice-view"}, Subjects: []rbacv1.Subject{{Kind: "User", Name: "alice"}},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
	}, metav1.CreateOptions{})
	wantOK(t, "binding alice to view in default", err)
	pollAllowed(t, "alice's binding to take effect", func() error {
		_, err := alice.CoreV1().Pods("default").Get(ctx, "x", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
	// Only in default.
	_, err = alice.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{})
	wantForbidden(t, "alice lists pods in kube-system", err)

	// Removing the binding takes the right away again.
	wantOK(t, "unbinding", admin.RbacV1().RoleBindings("default").Delete(ctx, "alice-view", metav1.DeleteOptions{}))
	poll.Until(t, 5*time.Second, "alice's right to go", func() (bool, error) {
		_, err := alice.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		return apierrors.IsForbidden(err), nil
	})
}

func TestAuthzNodeRestriction(t *testing.T) {
	e := testenv.Start(t)
	ctx := context.Background()
	admin := client(t, e, "kubernetes-admin", user.MastersGroup)
	nodeA := client(t, e, user.NodeUserPrefix+"node-a", user.NodesGroup)

	// A node registers itself, and only itself.
	_, err := nodeA.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}, metav1.CreateOptions{})
	wantOK(t, "node-a registers", err)
	_, err = nodeA.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-c"}}, metav1.CreateOptions{})
	wantForbidden(t, "node-a registers node-c", err)
	_, err = admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-b"}}, metav1.CreateOptions{})
	wantOK(t, "creating node-b", err)

	own, err := nodeA.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
	wantOK(t, "node-a reads itself", err)
	own.Labels = map[string]string{"a": "b"}
	_, err = nodeA.CoreV1().Nodes().Update(ctx, own, metav1.UpdateOptions{})
	wantOK(t, "node-a updates itself", err)
	own, _ = nodeA.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
	own.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	_, err = nodeA.CoreV1().Nodes().UpdateStatus(ctx, own, metav1.UpdateOptions{})
	wantOK(t, "node-a updates its status", err)
	other, err := nodeA.CoreV1().Nodes().Get(ctx, "node-b", metav1.GetOptions{})
	wantOK(t, "node-a reads node-b", err)
	other.Labels = map[string]string{"evil": "true"}
	_, err = nodeA.CoreV1().Nodes().Update(ctx, other, metav1.UpdateOptions{})
	wantForbidden(t, "node-a updates node-b", err)
	_, err = nodeA.CoreV1().Nodes().UpdateStatus(ctx, other, metav1.UpdateOptions{})
	wantForbidden(t, "node-a updates node-b's status", err)
	wantForbidden(t, "node-a deletes node-b", nodeA.CoreV1().Nodes().Delete(ctx, "node-b", metav1.DeleteOptions{}))
	// Nor its own taints or restricted labels.
	own, _ = nodeA.CoreV1().Nodes().Get(ctx, "node-a", metav1.GetOptions{})
	tainted := own.DeepCopy()
	tainted.Spec.Taints = []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoSchedule}}
	_, err = nodeA.CoreV1().Nodes().Update(ctx, tainted, metav1.UpdateOptions{})
	wantForbidden(t, "node-a taints itself", err)
	own.Labels["node-restriction.kubernetes.io/trusted"] = "yes"
	_, err = nodeA.CoreV1().Nodes().Update(ctx, own, metav1.UpdateOptions{})
	wantForbidden(t, "node-a labels itself trusted", err)
	own.Labels["node-restriction.kubernetes.io/trusted"] = "" // present, empty: matches Exists
	_, err = nodeA.CoreV1().Nodes().Update(ctx, own, metav1.UpdateOptions{})
	wantForbidden(t, "node-a labels itself trusted with an empty value", err)

	// Leases: its own in kube-node-lease.
	leases := nodeA.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	holder := "node-a"
	l, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "node-a"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}}, metav1.CreateOptions{})
	wantOK(t, "node-a creates its lease", err)
	now := metav1.NewMicroTime(time.Now())
	l.Spec.RenewTime = &now
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	wantOK(t, "node-a renews its lease", err)
	_, err = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "node-b"}}, metav1.CreateOptions{})
	wantForbidden(t, "node-a creates node-b's lease", err)
	_, err = nodeA.CoordinationV1().Leases("kube-system").Get(ctx, "kube-scheduler", metav1.GetOptions{})
	wantForbidden(t, "node-a reads a lease in kube-system", err)

	// Pods: status and delete only for its own.
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "used"}, StringData: map[string]string{"k": "v"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "env"}, StringData: map[string]string{"k": "v"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "other"}, StringData: map[string]string{"k": "v"}},
	} {
		_, err := admin.CoreV1().Secrets("default").Create(ctx, s, metav1.CreateOptions{})
		wantOK(t, "creating secret "+s.Name, err)
	}
	pod := func(name, node, secret string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{NodeName: node,
			Containers: []corev1.Container{{Name: "c", Image: "x:1", Env: []corev1.EnvVar{{Name: "E", ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "env"}, Key: "k"}}}}}},
			Volumes: []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}}}}}
	}
	_, err = admin.CoreV1().Pods("default").Create(ctx, pod("pa", "node-a", "used"), metav1.CreateOptions{})
	wantOK(t, "creating pa on node-a", err)
	_, err = admin.CoreV1().Pods("default").Create(ctx, pod("pb", "node-b", "other"), metav1.CreateOptions{})
	wantOK(t, "creating pb on node-b", err)

	pa, err := nodeA.CoreV1().Pods("default").Get(ctx, "pa", metav1.GetOptions{})
	wantOK(t, "node-a reads pa", err)
	pa.Status.Phase = corev1.PodRunning
	_, err = nodeA.CoreV1().Pods("default").UpdateStatus(ctx, pa, metav1.UpdateOptions{})
	wantOK(t, "node-a updates pa's status", err)
	pb, err := nodeA.CoreV1().Pods("default").Get(ctx, "pb", metav1.GetOptions{})
	wantOK(t, "node-a reads pb", err)
	pb.Status.Phase = corev1.PodFailed
	_, err = nodeA.CoreV1().Pods("default").UpdateStatus(ctx, pb, metav1.UpdateOptions{})
	wantForbidden(t, "node-a updates pb's status", err)
	wantForbidden(t, "node-a deletes pb", nodeA.CoreV1().Pods("default").Delete(ctx, "pb", metav1.DeleteOptions{}))
	_, err = nodeA.CoreV1().Pods("default").Create(ctx, pod("pc", "node-a", "used"), metav1.CreateOptions{})
	wantForbidden(t, "node-a creates a pod", err)

	// Secrets: get of those its pods use, nothing else.
	_, err = nodeA.CoreV1().Secrets("default").Get(ctx, "used", metav1.GetOptions{})
	wantOK(t, "node-a gets its pod's volume secret", err)
	_, err = nodeA.CoreV1().Secrets("default").Get(ctx, "env", metav1.GetOptions{})
	wantOK(t, "node-a gets its pod's env secret", err)
	_, err = nodeA.CoreV1().Secrets("default").Get(ctx, "other", metav1.GetOptions{})
	wantForbidden(t, "node-a gets node-b's pod's secret", err)
	_, err = nodeA.CoreV1().Secrets("default").List(ctx, metav1.ListOptions{})
	wantForbidden(t, "node-a lists secrets", err)
	_, err = nodeA.CoreV1().ConfigMaps("default").Get(ctx, "unused", metav1.GetOptions{})
	wantForbidden(t, "node-a gets an unused configmap", err)

	// Its own pods go.
	wantOK(t, "node-a deletes pa", nodeA.CoreV1().Pods("default").Delete(ctx, "pa", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
}

func TestAuthzEscalationPrevention(t *testing.T) {
	e := testenv.Start(t)
	ctx := context.Background()
	admin := client(t, e, "kubernetes-admin", user.MastersGroup)
	_, err := admin.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "role-writer"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"create", "update"}, APIGroups: []string{rbacv1.GroupName}, Resources: []string{"roles", "rolebindings"}}}},
		metav1.CreateOptions{})
	wantOK(t, "creating role-writer", err)
	bindClusterRole(t, admin, "bob-view", "view", userSubject("bob"))
	bindClusterRole(t, admin, "bob-roles", "role-writer", userSubject("bob"))
	bob := client(t, e, "bob")

	readPods := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "read-pods"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}
	pollAllowed(t, "bob to create a role he holds", func() error {
		_, err := bob.RbacV1().Roles("default").Create(ctx, readPods, metav1.CreateOptions{})
		return err
	})
	readSecrets := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "read-secrets"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}}}}
	_, err = bob.RbacV1().Roles("default").Create(ctx, readSecrets, metav1.CreateOptions{})
	wantForbidden(t, "bob creates a role granting secrets", err)
	if !strings.Contains(err.Error(), "attempting to grant RBAC permissions not currently held") {
		t.Errorf("message: %v", err)
	}
	// Nor by widening a role he may update.
	got, err := bob.RbacV1().Roles("default").Get(ctx, "read-pods", metav1.GetOptions{})
	wantOK(t, "bob reads his role", err)
	got.Rules = append(got.Rules, readSecrets.Rules...)
	_, err = bob.RbacV1().Roles("default").Update(ctx, got, metav1.UpdateOptions{})
	wantForbidden(t, "bob widens his role to secrets", err)
	// Nor by binding himself to edit.
	_, err = bob.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "bob-edit"},
		Subjects: []rbacv1.Subject{userSubject("bob")}, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"}},
		metav1.CreateOptions{})
	wantForbidden(t, "bob binds himself to edit", err)
	// Binding what he holds is fine.
	_, err = bob.RbacV1().RoleBindings("default").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "carol-read-pods"},
		Subjects: []rbacv1.Subject{userSubject("carol")}, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "read-pods"}},
		metav1.CreateOptions{})
	wantOK(t, "bob binds carol to read-pods", err)

	// A binding's roleRef never changes.
	b, err := admin.RbacV1().RoleBindings("default").Get(ctx, "carol-read-pods", metav1.GetOptions{})
	wantOK(t, "reading the binding", err)
	b.RoleRef.Name = "other"
	_, err = admin.RbacV1().RoleBindings("default").Update(ctx, b, metav1.UpdateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Errorf("changing roleRef: got %v, want Invalid", err)
	}
}

func TestAuthzSelfSubjectAccessReview(t *testing.T) {
	e := testenv.Start(t)
	ctx := context.Background()
	admin := client(t, e, "kubernetes-admin", user.MastersGroup)
	bindClusterRole(t, admin, "dave-view", "view", userSubject("dave"))
	dave := client(t, e, "dave")
	ask := func(verb, resource string) authorizationv1.SubjectAccessReviewStatus {
		t.Helper()
		r, err := dave.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: "default", Verb: verb, Resource: resource}}}, metav1.CreateOptions{})
		wantOK(t, "creating a review", err)
		return r.Status
	}
	poll.Until(t, 5*time.Second, "dave may list pods", func() (bool, error) { return ask("list", "pods").Allowed, nil })
	if st := ask("create", "pods"); st.Allowed {
		t.Errorf("dave may create pods: %+v", st)
	}
	if st := ask("get", "secrets"); st.Allowed {
		t.Errorf("dave may read secrets: %+v", st)
	}
	r, err := dave.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{NonResourceAttributes: &authorizationv1.NonResourceAttributes{Verb: "get", Path: "/api"}}},
		metav1.CreateOptions{})
	wantOK(t, "a non-resource review", err)
	if !r.Status.Allowed {
		t.Errorf("dave may not read /api: %+v", r.Status)
	}
	_, err = dave.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Errorf("a review asking nothing: got %v, want Invalid", err)
	}
	rules, err := dave.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: "default"}}, metav1.CreateOptions{})
	wantOK(t, "a rules review", err)
	readsPods := false
	for _, rr := range rules.Status.ResourceRules {
		for _, res := range rr.Resources {
			if res == "pods" && slices.Contains(rr.Verbs, "list") {
				readsPods = true
			}
			if res == "secrets" {
				t.Errorf("dave's rules name secrets: %+v", rr)
			}
		}
	}
	if !readsPods || len(rules.Status.NonResourceRules) == 0 {
		t.Errorf("dave's rules: %+v", rules.Status)
	}
}

// TestAuthzWithoutWatchCache runs a server over the test cluster's etcd
// with no watch cache: the authorizer reads RBAC from its own snapshots,
// which see a new binding within a second; a request without a user is
// refused.
func TestAuthzWithoutWatchCache(t *testing.T) {
	e := testenv.Start(t)
	a := startUncached(t, e)
	erin := func(method, path string, body any) response {
		return a.do(method, path, jsonType, body, "X-Test-User", "erin")
	}
	if r := erin("GET", "/api/v1/namespaces/default/configmaps", nil); r.code != http.StatusForbidden {
		t.Fatalf("erin lists configmaps before her binding: %d %s", r.code, r.body)
	}
	if r := a.do("GET", "/api/v1/namespaces/default/configmaps", "", nil, "X-Test-User", "none"); r.code != http.StatusForbidden {
		t.Fatalf("a request without a user: %d %s", r.code, r.body)
	}
	if r := a.do("GET", "/version", "", nil, "X-Test-User", "none"); r.code != http.StatusForbidden {
		t.Fatalf("/version without a user: %d %s", r.code, r.body)
	}
	a.must(http.StatusCreated, "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", jsonType,
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "erin"}, Subjects: []rbacv1.Subject{userSubject("erin")},
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"}})
	start := time.Now()
	poll.Until(t, 5*time.Second, "erin's binding to take effect", func() (bool, error) {
		return erin("GET", "/api/v1/namespaces/default/configmaps", nil).code == http.StatusOK, nil
	})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the binding took %v to take effect", d)
	}
	if r := erin("GET", "/api/v1/namespaces/default/secrets", nil); r.code != http.StatusOK {
		t.Errorf("edit lists secrets: %d %s", r.code, r.body)
	}
	if r := erin("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "r"}}); r.code != http.StatusForbidden {
		t.Errorf("edit creates a role: %d %s", r.code, r.body)
	}
	// /healthz and discovery for any authenticated user.
	for _, p := range []string{"/healthz", "/version", "/api", "/apis/apps/v1", "/openapi/v3"} {
		if r := erin("GET", p, nil); r.code != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, r.code, r.body)
		}
	}
	if r := erin("GET", "/metrics", nil); r.code != http.StatusForbidden {
		t.Errorf("GET /metrics by a user outside system:monitoring: %d", r.code)
	}
	if r := erin("GET", "/no/such/path", nil); r.code != http.StatusForbidden {
		t.Errorf("an unknown path: %d, want 403", r.code)
	}
	if r := a.do("GET", "/metrics", "", nil, "X-Test-User", "prom", "X-Test-Groups", "system:monitoring"); r.code != http.StatusOK {
		t.Errorf("GET /metrics by system:monitoring: %d", r.code)
	}
}
