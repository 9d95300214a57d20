package cmd_test

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubeish/kubeish/kctl/cmd"
)

func int32p(v int32) *int32 { return &v }

func TestRolloutStatusWords(t *testing.T) {
	d := func(gen, observed int64, replicas, updated, total, available int32, reason string) *appsv1.Deployment {
		out := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Generation: gen}, Spec: appsv1.DeploymentSpec{Replicas: int32p(replicas)},
			Status: appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: total, UpdatedReplicas: updated, AvailableReplicas: available}}
		if reason != "" {
			out.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: reason}}
		}
		return out
	}
	tests := []struct {
		name string
		d    *appsv1.Deployment
		msg  string
		done bool
		err  string
	}{
		{"spec not observed", d(2, 1, 3, 3, 3, 3, ""), "Waiting for deployment spec update to be observed...", false, ""},
		{"updating", d(2, 2, 3, 1, 4, 3, ""), `Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...`, false, ""},
		{"old pending termination", d(2, 2, 3, 3, 5, 3, ""), `Waiting for deployment "web" rollout to finish: 2 old replicas are pending termination...`, false, ""},
		{"waiting for available", d(2, 2, 3, 3, 3, 1, ""), `Waiting for deployment "web" rollout to finish: 1 of 3 updated replicas are available...`, false, ""},
		{"done", d(2, 2, 3, 3, 3, 3, ""), `deployment "web" successfully rolled out`, true, ""},
		{"deadline exceeded", d(2, 2, 3, 1, 3, 1, "ProgressDeadlineExceeded"), "", false, `deployment "web" exceeded its progress deadline`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, done, err := cmd.RolloutStatus(tc.d)
			if msg != tc.msg || done != tc.done || (err == nil) != (tc.err == "") || err != nil && err.Error() != tc.err {
				t.Fatalf("got %q %v %v, want %q %v %q", msg, done, err, tc.msg, tc.done, tc.err)
			}
		})
	}
}

// TestRollout writes what the Deployment controller would (ReplicaSets
// with revisions, the deployment's status) and checks kctl rollout reads
// them as kubectl does.
func TestRollout(t *testing.T) {
	k := newKctl(t)
	ctx := context.Background()
	apps := k.env.Client.AppsV1()
	labels := map[string]string{"app": "web"}
	template := func(image string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}}}
	}
	d, err := apps.Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       appsv1.DeploymentSpec{Replicas: int32p(3), Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template("example/web:2")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for rev, image := range map[string]string{"1": "example/web:1", "2": "example/web:2"} {
		tmpl := template(image)
		tmpl.Labels = map[string]string{"app": "web", "pod-template-hash": "h" + rev}
		ann := map[string]string{"deployment.kubernetes.io/revision": rev}
		if rev == "2" {
			ann["kubernetes.io/change-cause"] = "image 2"
		}
		_, err := apps.ReplicaSets("default").Create(ctx, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "web-h" + rev, Labels: tmpl.Labels, Annotations: ann,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))}},
			Spec: appsv1.ReplicaSetSpec{Replicas: int32p(1), Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels}, Template: tmpl},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	setStatus := func(updated, total, available int32) {
		t.Helper()
		cur, err := apps.Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Status = appsv1.DeploymentStatus{ObservedGeneration: cur.Generation, Replicas: total, UpdatedReplicas: updated, AvailableReplicas: available, ReadyReplicas: available}
		if _, err := apps.Deployments("default").UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	if out := k.ok("rollout", "status", "deployment", "web", "--watch=false"); out != "Waiting for deployment spec update to be observed...\n" {
		t.Fatalf("got %q", out)
	}
	setStatus(1, 4, 3)
	if out := k.ok("rollout", "status", "deploy/web", "--watch=false"); out != "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...\n" {
		t.Fatalf("got %q", out)
	}
	w := k.start("rollout", "status", "deployment", "web")
	w.waitFor(t, "1 out of 3 new replicas have been updated")
	setStatus(3, 3, 2)
	w.waitFor(t, "2 of 3 updated replicas are available")
	setStatus(3, 3, 3)
	w.waitFor(t, `deployment "web" successfully rolled out`)
	if code := <-w.done; code != 0 {
		t.Fatalf("rollout status exit %d", code)
	}

	out := k.ok("rollout", "history", "deployment", "web")
	if rows := tableRows(out); strings.Join(rows[0], " ") != "deployment.apps/web" || strings.Join(rows[1], " ") != "REVISION CHANGE-CAUSE" ||
		strings.Join(rows[2], " ") != "1 <none>" || strings.Join(rows[3], " ") != "2 image 2" {
		t.Fatalf("history:\n%s", out)
	}
	if out := k.ok("rollout", "history", "deployment", "web", "--revision", "1"); !strings.Contains(out, "with revision #1") || !strings.Contains(out, "image: example/web:1") {
		t.Fatalf("history --revision 1:\n%s", out)
	}

	if out := k.ok("rollout", "undo", "deployment", "web"); out != "deployment.apps/web rolled back\n" {
		t.Fatalf("got %q", out)
	}
	cur, err := apps.Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := cur.Spec.Template.Spec.Containers[0].Image; img != "example/web:1" || cur.Spec.Template.Labels["pod-template-hash"] != "" || cur.Generation != d.Generation+1 {
		t.Fatalf("after undo: image %s, labels %v, generation %d", img, cur.Spec.Template.Labels, cur.Generation)
	}
	if out := k.ok("rollout", "status", "deployment", "web", "--watch=false"); out != "Waiting for deployment spec update to be observed...\n" {
		t.Fatalf("after undo: %q", out)
	}
	if out := k.ok("rollout", "undo", "deployment", "web", "--to-revision", "1"); !strings.Contains(out, "skipped rollback") {
		t.Fatalf("got %q", out)
	}
	if r := k.run("rollout", "undo", "deployment", "web", "--to-revision", "7"); r.code != 1 || !strings.Contains(r.err, "unable to find the specified revision 7") {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	if r := k.run("rollout", "status", "svc", "web"); r.code != 1 || !strings.Contains(r.err, "rollout works on deployments") {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
}
