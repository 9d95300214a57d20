//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/kubeish/kubeish/pkg/poll"
	"github.com/kubeish/kubeish/pkg/testhost"
)

// echoDeployment is a Deployment of the echo image at tag: POD_NAME from
// the downward API, a readiness probe on /healthz every second, and a
// rollout that never goes below the wanted count (maxUnavailable 0,
// maxSurge 1).
func echoDeployment(ns, name string, replicas int32, tag string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: ptr.To(intstr.FromInt32(0)), MaxSurge: ptr.To(intstr.FromInt32(1))}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					Containers:                    []corev1.Container{echoContainer(tag)},
				},
			},
		},
	}
}

func echoContainer(tag string) corev1.Container {
	return corev1.Container{
		Name: "echo", Image: echoRef + ":" + tag, ImagePullPolicy: corev1.PullNever,
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		Env: []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}},
			PeriodSeconds: 1, FailureThreshold: 1, SuccessThreshold: 1, TimeoutSeconds: 1,
		},
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("32Mi")}},
	}
}

// echoService is a ClusterIP Service on port 80 over the pods of app.
func echoService(ns, name, app string) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
}

func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podsOf lists the pods of app in ns.
func (c *realCluster) podsOf(ctx context.Context, ns, app string) ([]corev1.Pod, error) {
	list, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items, nil
}

// waitReadyPods waits until app has exactly want pods, all Running and
// Ready (none terminating), none on an avoided node, each with the image
// tag when tag is set; it returns them.
func (c *realCluster) waitReadyPods(ns, app string, want int, tag string, within time.Duration, avoid ...string) []corev1.Pod {
	c.t.Helper()
	ctx := ctxFor(c.t)
	var pods []corev1.Pod
	poll.UntilEvery(c.t, 100*time.Millisecond, within, fmt.Sprintf("%d ready pods of %s/%s", want, ns, app), func() (bool, error) {
		var err error
		if pods, err = c.podsOf(ctx, ns, app); err != nil {
			return false, err
		}
		var bad []string
		for _, p := range pods {
			switch {
			case !podReady(&p):
				bad = append(bad, fmt.Sprintf("%s on %q not ready: %s", p.Name, p.Spec.NodeName, podSummary(&p)))
			case tag != "" && p.Spec.Containers[0].Image != echoRef+":"+tag:
				bad = append(bad, fmt.Sprintf("%s runs %s", p.Name, p.Spec.Containers[0].Image))
			case slices.Contains(avoid, p.Spec.NodeName):
				bad = append(bad, fmt.Sprintf("%s on %s", p.Name, p.Spec.NodeName))
			}
		}
		if len(pods) != want || len(bad) > 0 {
			return false, fmt.Errorf("%d pods, want %d; %s", len(pods), want, strings.Join(bad, "; "))
		}
		return true, nil
	})
	return pods
}

// podSummary says why a pod is not ready, briefly.
func podSummary(p *corev1.Pod) string {
	s := string(p.Status.Phase)
	if p.DeletionTimestamp != nil {
		s += " terminating"
	}
	for _, cs := range p.Status.ContainerStatuses {
		switch {
		case cs.State.Waiting != nil:
			s += fmt.Sprintf(" %s: waiting %s %s", cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message)
		case cs.State.Terminated != nil:
			s += fmt.Sprintf(" %s: terminated %s", cs.Name, cs.State.Terminated.Reason)
		case !cs.Ready:
			s += " " + cs.Name + ": running, not ready"
		}
	}
	return s
}

// waitEndpoints waits until the Endpoints of svc list exactly the ready
// addresses ips.
func (c *realCluster) waitEndpoints(ns, svc string, ips []string, within time.Duration) {
	c.t.Helper()
	ctx := ctxFor(c.t)
	want := append([]string(nil), ips...)
	sort.Strings(want)
	poll.UntilEvery(c.t, 50*time.Millisecond, within, fmt.Sprintf("endpoints of %s/%s = %v", ns, svc, want), func() (bool, error) {
		ep, err := c.client.CoreV1().Endpoints(ns).Get(ctx, svc, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		var got []string
		for _, s := range ep.Subsets {
			for _, a := range s.Addresses {
				got = append(got, a.IP)
			}
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			return false, fmt.Errorf("ready addresses %v", got)
		}
		return true, nil
	})
}

func podIPs(pods []corev1.Pod) []string {
	var ips []string
	for _, p := range pods {
		ips = append(ips, p.Status.PodIP)
	}
	return ips
}

func podNames(pods []corev1.Pod) []string {
	var names []string
	for _, p := range pods {
		names = append(names, p.Name)
	}
	return names
}

// hostClient is an HTTP client whose connections start inside host, one
// connection per request (so every request through a Service is balanced
// anew).
func hostClient(h *testhost.Host, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: h.DialContext, DisableKeepAlives: true}}
}

// get GETs u from inside host and wants 200.
func get(h *testhost.Host, u string) (string, error) {
	resp, err := hostClient(h, 3*time.Second).Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s from %s: %s: %s", u, h.Name, resp.Status, b)
	}
	return string(b), nil
}

// fetchResult is echo's /fetch answer.
type fetchResult struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
	Error  string `json:"error"`
}

// fetchFrom has the echo pod at podIP (reached from its node host) GET u
// from inside the pod: the pod's network, routes and resolv.conf.
func fetchFrom(node *testhost.Host, podIP, u string) (string, error) {
	q := url.Values{"url": {u}, "timeout": {"2s"}}
	body, err := get(node, "http://"+net.JoinHostPort(podIP, "8080")+"/fetch?"+q.Encode())
	if err != nil {
		return "", fmt.Errorf("reaching pod %s: %w", podIP, err)
	}
	var r fetchResult
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return "", fmt.Errorf("fetch answer %q: %w", body, err)
	}
	if r.Error != "" {
		return r.Body, fmt.Errorf("from pod %s: GET %s: %s", podIP, u, r.Error)
	}
	if r.Status != http.StatusOK {
		return r.Body, fmt.Errorf("from pod %s: GET %s: status %d: %s", podIP, u, r.Status, r.Body)
	}
	return r.Body, nil
}

// greeting parses echo's "hello from POD (VERSION)" into pod and version.
func greeting(body string) (pod, version string, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(body), "hello from ")
	if !ok {
		return "", "", fmt.Errorf("not an echo greeting: %q", body)
	}
	pod, version, _ = strings.Cut(rest, " ")
	return pod, strings.Trim(version, "()"), nil
}

// untilEvery is poll.UntilEvery that keeps going after the condition's
// errors, for conditions that make network requests.
func untilEvery(t *testing.T, interval, within time.Duration, what string, cond func() error) {
	t.Helper()
	poll.UntilEvery(t, interval, within, what, func() (bool, error) {
		err := cond()
		return err == nil, err
	})
}

// dialRefused dials addr from inside h and reports nil only when the
// connection is refused at once (a REJECT, or nobody listening).
func dialRefused(h *testhost.Host, addr string) error {
	took, err := dialFails(h, addr)
	if err != nil {
		return err
	}
	if !errors.Is(took.err, syscall.ECONNREFUSED) {
		return fmt.Errorf("dialing %s failed after %s with %v, want connection refused", addr, took.after.Round(time.Millisecond), took.err)
	}
	return nil
}

// dialFailure is how a dial failed.
type dialFailure struct {
	err   error
	after time.Duration
}

// dialFails dials addr from inside h and returns how it failed; it is an
// error when the dial succeeds or times out (2 s).
func dialFails(h *testhost.Host, addr string) (dialFailure, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	conn, err := h.DialContext(ctx, "tcp", addr)
	took := time.Since(start)
	if err == nil {
		conn.Close()
		return dialFailure{}, fmt.Errorf("%s accepted a connection", addr)
	}
	var timeout interface{ Timeout() bool }
	if errors.As(err, &timeout) && timeout.Timeout() {
		return dialFailure{}, fmt.Errorf("dialing %s timed out after %s instead of failing at once: %w", addr, took.Round(time.Millisecond), err)
	}
	return dialFailure{err: err, after: took}, nil
}
