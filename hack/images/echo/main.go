// Command echo is the example image of kubeish: a tiny HTTP server that
// answers with its pod's name (from $POD_NAME) and, for tests and demos,
// can print a file, crash after a while, or eat memory.
//
//	/                  "hello from <POD_NAME>", or "hello from <POD_NAME> (<ECHO_VERSION>)"
//	                   when the image sets $ECHO_VERSION (the e2e suite's v1 and v2)
//	/env?name=X        the value of $X
//	/file?path=P       the content of file P
//	/burn?ms=N         keeps a core busy N ms (default 100, at most 10 s), for autoscaling demos
//	/log?msg=M         prints M on stdout (for log tests)
//	/healthz           200, or 500 while the file named by --unhealthy-file
//	                   exists or after /unready
//	/unready, /ready   make /healthz fail, or pass again (a readiness probe on
//	                   /healthz then takes the pod out of its Services)
//	/fetch?url=U       GETs U from inside the pod (resolving names with the
//	                   pod's /etc/resolv.conf) and answers 200 with JSON
//	                   {"status":…,"body":…,"error":…}; &timeout=D (default 3s)
//
// With --shutdown-delay D, SIGTERM makes it keep serving for D (with
// /healthz failing) before it finishes open requests and exits, so that a
// rolling update behind a Service fails no request.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// fetchResult is /fetch's answer: the status and body of the request made
// from inside the pod, or why it failed.
type fetchResult struct {
	Status int    `json:"status,omitempty"`
	Body   string `json:"body,omitempty"`
	Error  string `json:"error,omitempty"`
}

// fetch GETs url on a fresh connection (no keep-alive, so every request
// through a Service is balanced anew).
func fetch(url string, timeout time.Duration) fetchResult {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return fetchResult{Error: err.Error()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	r := fetchResult{Status: resp.StatusCode, Body: string(b)}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

func main() {
	listen := flag.String("listen", ":8080", "address to serve HTTP on")
	exitAfter := flag.Duration("exit-after", 0, "exit after this long (0: never)")
	exitCode := flag.Int("exit-code", 1, "exit code used with --exit-after")
	eatMemory := flag.Int("eat-memory-mb", 0, "allocate and touch this many MiB at start")
	unhealthy := flag.String("unhealthy-file", "", "/healthz fails while this file exists")
	shutdownDelay := flag.Duration("shutdown-delay", 0, "on SIGTERM, keep serving this long before shutting down "+
		"(while every node's proxy drops the terminating pod), then finish open requests and exit; 0: exit at once")
	flag.Parse()

	fmt.Printf("echo: starting as pod %q on %s\n", os.Getenv("POD_NAME"), *listen)
	if *eatMemory > 0 {
		var keep [][]byte
		for i := 0; i < *eatMemory; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			keep = append(keep, b)
		}
		fmt.Printf("echo: holding %d MiB\n", len(keep))
	}
	if *exitAfter > 0 {
		go func() {
			time.Sleep(*exitAfter)
			fmt.Printf("echo: exiting with %d\n", *exitCode)
			os.Exit(*exitCode)
		}()
	}
	var failing atomic.Bool // set by /unready
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if v := os.Getenv("ECHO_VERSION"); v != "" {
			fmt.Fprintf(w, "hello from %s (%s)\n", os.Getenv("POD_NAME"), v)
			return
		}
		fmt.Fprintf(w, "hello from %s\n", os.Getenv("POD_NAME"))
	})
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		url := r.URL.Query().Get("url")
		if url == "" {
			http.Error(w, "fetch: ?url= is required", http.StatusBadRequest)
			return
		}
		timeout := 3 * time.Second
		if t := r.URL.Query().Get("timeout"); t != "" {
			d, err := time.ParseDuration(t)
			if err != nil {
				http.Error(w, "fetch: timeout: "+err.Error(), http.StatusBadRequest)
				return
			}
			timeout = d
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(fetch(url, timeout))
	})
	mux.HandleFunc("/unready", func(w http.ResponseWriter, r *http.Request) {
		failing.Store(true)
		fmt.Fprint(w, "healthz now fails")
	})
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		failing.Store(false)
		fmt.Fprint(w, "healthz now passes")
	})
	mux.HandleFunc("/burn", burn)
	mux.HandleFunc("/log", func(w http.ResponseWriter, r *http.Request) {
		fmt.Println(r.URL.Query().Get("msg"))
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getenv(r.URL.Query().Get("name")))
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "unhealthy (/unready)", http.StatusInternalServerError)
			return
		}
		if *unhealthy != "" {
			if _, err := os.Stat(*unhealthy); err == nil {
				http.Error(w, "unhealthy", http.StatusInternalServerError)
				return
			}
		}
		fmt.Fprint(w, "ok")
	})
	srv := &http.Server{Addr: *listen, Handler: mux}
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		s := <-c
		if *shutdownDelay <= 0 {
			fmt.Printf("echo: got %v, exiting\n", s)
			os.Exit(0)
		}
		// A terminating pod leaves its Services' endpoints at once, but
		// each node's proxy drops it a moment later: serve until then,
		// as apps behind a Service must.
		fmt.Printf("echo: got %v, serving %v more, then exiting\n", s, *shutdownDelay)
		failing.Store(true)
		time.Sleep(*shutdownDelay)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		fmt.Println("echo: exiting")
		os.Exit(0)
	}()
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

// maxBurn bounds one /burn request, so that a load test can never pin a
// core for longer than it meant to.
const maxBurn = 10 * time.Second

// burn keeps one core busy for ?ms= milliseconds (default 100), then
// answers: the CPU load the autoscaling example (manifests/hpa.yaml) and
// its tests put on a Deployment.
func burn(w http.ResponseWriter, r *http.Request) {
	d := 100 * time.Millisecond
	if v := r.URL.Query().Get("ms"); v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil || ms < 0 {
			http.Error(w, "burn: ?ms= must be a non-negative integer", http.StatusBadRequest)
			return
		}
		d = time.Duration(ms) * time.Millisecond
	}
	d = min(d, maxBurn)
	start := time.Now()
	x := uint64(1)
	for time.Since(start) < d {
		for i := 0; i < 10000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	fmt.Fprintf(w, "burned %v of cpu in %s (%d)\n", d, os.Getenv("POD_NAME"), x%10)
}
