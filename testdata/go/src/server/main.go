// Command server is a test target of adi's Go uprobes: a stdlib-only HTTP(S) server that
// answers every request with the status code named by its path (/status/NNN, default 200)
// and echoes the request line in the body. It prints "listening on ADDR" once it accepts
// connections, then serves until killed. With -tls-cert and -tls-key it serves HTTPS (HTTP/1.1
// only, unless -h2 offers HTTP/2 too).
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
)

func handler(w http.ResponseWriter, r *http.Request) {
	status := http.StatusOK
	if rest := strings.TrimPrefix(r.URL.Path, "/status/"); rest != r.URL.Path {
		if n, err := strconv.Atoi(rest); err == nil && n >= 100 && n <= 999 {
			status = n
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%s %s\n", r.Method, r.URL.RequestURI())
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	certFile := flag.String("tls-cert", "", "serve HTTPS with this PEM certificate (needs -tls-key)")
	keyFile := flag.String("tls-key", "", "PEM private key of -tls-cert")
	h2 := flag.Bool("h2", false, "with -tls-cert: offer HTTP/2 (ALPN h2) as well as HTTP/1.1")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(handler)}
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			log.Fatal(err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		if *h2 {
			// ServeTLS sets up HTTP/2 and adds "h2" to the offered protocols.
			fmt.Printf("listening on %s\n", ln.Addr())
			os.Stdout.Sync()
			log.Fatal(srv.ServeTLS(ln, "", ""))
		}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	os.Stdout.Sync()
	log.Fatal(srv.Serve(ln))
}
