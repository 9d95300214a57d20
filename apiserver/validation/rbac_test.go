package validation

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

func TestRBAC(t *testing.T) {
	podsRule := rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"}
	userSubj := rbacv1.Subject{Kind: "User", Name: "alice"}
	meta := metav1.ObjectMeta{Name: "x", Namespace: "default"}
	for _, tc := range []struct {
		name string
		obj  runtime.Object
		want []string // field paths
	}{
		{"role ok", &rbacv1.Role{ObjectMeta: meta, Rules: []rbacv1.PolicyRule{podsRule}}, nil},
		{"role no verbs", &rbacv1.Role{ObjectMeta: meta, Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}}}}, []string{"rules[0].verbs"}},
		{"role no groups nor resources", &rbacv1.Role{ObjectMeta: meta, Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}}}}, []string{"rules[0].apiGroups", "rules[0].resources"}},
		{"role with a URL", &rbacv1.Role{ObjectMeta: meta, Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/metrics"}}}}, []string{"rules[0].nonResourceURLs"}},
		{"cluster role with a URL", &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/metrics"}}}}, nil},
		{"cluster role mixing", &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/metrics"}, Resources: []string{"pods"}}}}, []string{"rules[0].nonResourceURLs"}},
		{"cluster role aggregation", &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "x"}, AggregationRule: &rbacv1.AggregationRule{}}, []string{"aggregationRule"}},
		{"role name with a slash", &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "a/b", Namespace: "default"}}, []string{"metadata.name"}},
		{"binding ok", &rbacv1.RoleBinding{ObjectMeta: meta, RoleRef: ref, Subjects: []rbacv1.Subject{userSubj, {Kind: "ServiceAccount", Name: "default"}}}, nil},
		{"binding no roleRef", &rbacv1.RoleBinding{ObjectMeta: meta}, []string{"roleRef.apiGroup", "roleRef.kind", "roleRef.name"}},
		{"binding bad subject", &rbacv1.RoleBinding{ObjectMeta: meta, RoleRef: ref, Subjects: []rbacv1.Subject{{Kind: "Robot", Name: "r"}, {Kind: "User"}}}, []string{"subjects[0].kind", "subjects[1].name"}},
		{"cluster binding to a Role", &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "x"}, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "r"}}, []string{"roleRef.kind"}},
		{"cluster binding service account without namespace", &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "x"}, RoleRef: ref, Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "sa"}}}, []string{"subjects[0].namespace"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			SetDefaults(tc.obj)
			errs, _ := Validate(tc.obj)
			var got []string
			for _, e := range errs {
				got = append(got, e.Field)
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("errors %v, want fields %v", errs, tc.want)
			}
		})
	}
}

func TestRoleRefImmutable(t *testing.T) {
	old := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "default"},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"}}
	cur := old.DeepCopy()
	cur.RoleRef.Name = "edit"
	errs, _ := ValidateUpdate(cur, old)
	if len(errs) != 1 || errs[0].Field != "roleRef" {
		t.Errorf("errors %v, want one on roleRef", errs)
	}
	cur = old.DeepCopy()
	cur.Subjects = []rbacv1.Subject{{Kind: "Group", Name: "g"}}
	SetDefaults(cur)
	if errs, _ := ValidateUpdate(cur, old); len(errs) != 0 {
		t.Errorf("changing subjects: %v", errs)
	}
}

// TestSecretErrorsDoNotShowValues: a refused Secret's errors (which the
// apiserver returns and may log) never carry its data.
func TestSecretErrorsDoNotShowValues(t *testing.T) {
	const value = "s3cr3t-VALUE"
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "d"}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(value)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "b", Namespace: "d"}, Type: corev1.SecretTypeDockercfg,
			StringData: map[string]string{corev1.DockerConfigKey: "{" + value}},
		{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "d"}, Type: corev1.SecretTypeTLS,
			StringData: map[string]string{corev1.TLSCertKey: value}},
		{ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "d"}, Data: map[string][]byte{"bad key": []byte(value)}},
	} {
		SetDefaults(s)
		errs, _ := Validate(s)
		if len(errs) == 0 {
			t.Errorf("secret %s: no error", s.Name)
		}
		if strings.Contains(errs.ToAggregate().Error(), value) {
			t.Errorf("secret %s: the errors show its value: %v", s.Name, errs)
		}
		old := s.DeepCopy()
		old.Immutable = ptr.To(true)
		s.Immutable = ptr.To(true)
		s.Data = map[string][]byte{"k": []byte(value + "2")}
		errs, _ = ValidateUpdate(s, old)
		if strings.Contains(errs.ToAggregate().Error(), value) {
			t.Errorf("secret %s update: the errors show its value: %v", s.Name, errs)
		}
	}
}
