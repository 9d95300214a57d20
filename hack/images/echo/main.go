// Command echo is the example image of kubeish: a tiny HTTP server that
// answers with its pod's name (from $POD_NAME) and, for tests and demos,
// can print a file, crash after a while, or eat memory.
//
//	/            "hello from <POD_NAME>"
//	/env?name=X  the value of $X
//	/file?path=P the content of file P
//	/log?msg=M   prints M on stdout (for log tests)
//	/healthz     200, or 500 once the file named by --unhealthy-file exists
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", ":8080", "address to serve HTTP on")
	exitAfter := flag.Duration("exit-after", 0, "exit after this long (0: never)")
	exitCode := flag.Int("exit-code", 1, "exit code used with --exit-after")
	eatMemory := flag.Int("eat-memory-mb", 0, "allocate and touch this many MiB at start")
	unhealthy := flag.String("unhealthy-file", "", "/healthz fails while this file exists")
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
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		s := <-c
		fmt.Printf("echo: got %v, exiting\n", s)
		os.Exit(0)
	}()

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", os.Getenv("POD_NAME"))
	})
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
		if *unhealthy != "" {
			if _, err := os.Stat(*unhealthy); err == nil {
				http.Error(w, "unhealthy", http.StatusInternalServerError)
				return
			}
		}
		fmt.Fprint(w, "ok")
	})
	if err := http.ListenAndServe(*listen, mux); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}
