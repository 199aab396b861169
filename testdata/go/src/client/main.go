// Command client is a test target of adi's Go uprobes: a stdlib-only HTTP(S) client that
// sends -n GET requests to a URL (which should carry a query string) with a header holding
// two values (X-Two: one, X-Two: two) and a header with a 100-byte value (X-Long), and
// prints one line per response: the status code. With -wait it reads one line from stdin
// before the first request (so a test can attach uprobes first); -extra N adds N more headers
// (X-Extra-1: v1, ...) to exercise larger header maps.
package main

import (
	"bufio"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"
)

// LongValue is the 100-byte value of the X-Long header.
var LongValue = strings.Repeat("0123456789", 10)

func main() {
	n := flag.Int("n", 1, "number of requests")
	interval := flag.Duration("interval", 0, "pause between requests")
	insecure := flag.Bool("insecure", false, "accept any TLS certificate")
	wait := flag.Bool("wait", false, "read a line from stdin before the first request")
	extra := flag.Int("extra", 0, "number of additional headers")
	flag.Parse()
	if flag.NArg() != 1 {
		log.Fatal("usage: client [-n N] [-interval D] [-insecure] [-wait] [-extra N] URL")
	}
	if *wait {
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	url := flag.Arg(0)

	transport := http.DefaultTransport.(*http.Transport).Clone()
	if *insecure {
		transport.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	for i := 0; i < *n; i++ {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			log.Fatal(err)
		}
		req.Header.Add("X-Two", "one")
		req.Header.Add("X-Two", "two")
		req.Header.Set("X-Long", LongValue)
		for j := 1; j <= *extra; j++ {
			req.Header.Set(fmt.Sprintf("X-Extra-%d", j), fmt.Sprintf("v%d", j))
		}
		resp, err := client.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode)
		if *interval > 0 {
			time.Sleep(*interval)
		}
	}
}
