package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
)

// noDeadlineExec bounds an exec hook whose context has no deadline (a
// postStart): the runtime's Exec needs a timeout, and the kubelet puts
// none on hooks, so this is only a backstop far beyond any real hook.
const noDeadlineExec = 24 * time.Hour

// ErrHookInterrupted is returned when a hook's context ended before the
// hook did (its grace period ran out, or the pod is being deleted).
var ErrHookInterrupted = errors.New("container terminated before the hook finished")

// RunHook runs a container's lifecycle handler (postStart or preStop)
// once: exec in the container, httpGet to the pod's IP (or the handler's
// host), or sleep. It returns when the handler finishes or ctx ends.
//
// As the kubelet does, an httpGet hook fails only when the request
// fails, not on the status code, and an exec hook fails on a non-zero
// exit. tcpSocket handlers are refused by the apiserver; one that gets
// here anyway fails, as in Kubernetes.
func RunHook(ctx context.Context, h *v1.LifecycleHandler, c *v1.Container, podIP, containerID string, exec Exec, clk clock.Clock) error {
	switch {
	case h.Exec != nil:
		timeout := noDeadlineExec
		if d, ok := ctx.Deadline(); ok {
			timeout = time.Until(d) // context deadlines are on the real clock
		}
		if timeout <= 0 {
			return ErrHookInterrupted
		}
		code, out, err := exec(ctx, containerID, h.Exec.Command, timeout)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w: %v", ErrHookInterrupted, err)
			}
			return err
		}
		if code != 0 {
			return fmt.Errorf("command %q exited with %d: %q", h.Exec.Command, code, out)
		}
		return nil
	case h.HTTPGet != nil:
		req, err := newHTTPGetRequest(ctx, h.HTTPGet, c, podIP, "kube-lifecycle/kubeish")
		if err != nil {
			return err
		}
		resp, err := hookClient.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w: %v", ErrHookInterrupted, err)
			}
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		return nil
	case h.Sleep != nil:
		if h.Sleep.Seconds <= 0 {
			return nil
		}
		select {
		case <-clk.After(time.Duration(h.Sleep.Seconds) * time.Second):
			return nil
		case <-ctx.Done():
			return ErrHookInterrupted
		}
	case h.TCPSocket != nil:
		return errors.New("tcpSocket is not supported as a lifecycle handler")
	}
	return errors.New("lifecycle handler has no action")
}

// HookKind names a handler for messages, as the kubelet's do: "Exec",
// "HTTP", "Sleep".
func HookKind(h *v1.LifecycleHandler) string {
	switch {
	case h.Exec != nil:
		return "Exec"
	case h.HTTPGet != nil:
		return "HTTP"
	case h.Sleep != nil:
		return "Sleep"
	}
	return "Invalid"
}

// hookClient sends httpGet hooks. A hook reaches the pod's own address,
// for which no CA can vouch, so an https hook does not verify the
// certificate (as the kubelet's probes and hooks do not).
var hookClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 || req.URL.Host != via[0].URL.Host {
			return http.ErrUseLastResponse
		}
		return nil
	},
}
