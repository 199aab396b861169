// Command grpcdemo is a test target of adi's Go TLS probes: a gRPC server and client built
// with grpc-go (Debian's golang-google-grpc-dev, GOPATH mode, no network), serving and calling
// the same demo.Catalog service as the grpcio test (bin/tests/grpc.rs) over TLS. Messages are
// raw bytes (a pass-through codec named "proto": no protoc needed).
//
//	grpcdemo -serve -cert CERT -key KEY     prints the port, serves until killed
//	grpcdemo -call 127.0.0.1:PORT [-wait]   Ping("hello"), List("all"), Get("x") (NOT_FOUND);
//	                                        -wait: after a line on stdin (probes attach first)
//
// Build: GO111MODULE=off GOPATH=/usr/share/gocode go build (see bin/tests/grpc.rs).
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// raw passes messages through as bytes (*[]byte).
type raw struct{}

func (raw) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (raw) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (raw) Name() string   { return "proto" }
func (raw) String() string { return "proto" }

func ping(_ interface{}, _ context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
	var in []byte
	if err := dec(&in); err != nil {
		return nil, err
	}
	out := append([]byte("pong:"), in...)
	return &out, nil
}

func get(_ interface{}, _ context.Context, dec func(interface{}) error, _ grpc.UnaryServerInterceptor) (interface{}, error) {
	var in []byte
	if err := dec(&in); err != nil {
		return nil, err
	}
	return nil, status.Error(codes.NotFound, "no such item")
}

func list(_ interface{}, stream grpc.ServerStream) error {
	var in []byte
	if err := stream.RecvMsg(&in); err != nil {
		return err
	}
	for i := 0; i < 3; i++ {
		out := []byte(fmt.Sprintf("item%d", i))
		if err := stream.SendMsg(&out); err != nil {
			return err
		}
	}
	return nil
}

var catalog = grpc.ServiceDesc{
	ServiceName: "demo.Catalog",
	HandlerType: (*interface{})(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Ping", Handler: ping},
		{MethodName: "Get", Handler: get},
	},
	Streams: []grpc.StreamDesc{{StreamName: "List", Handler: list, ServerStreams: true}},
}

func serve(certFile, keyFile string) {
	creds, err := credentials.NewServerTLSFromFile(certFile, keyFile)
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(creds), grpc.CustomCodec(raw{}))
	srv.RegisterService(&catalog, struct{}{})
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	log.Fatal(srv.Serve(ln))
}

func call(addr string) {
	creds := credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})
	conn, err := grpc.Dial(addr, grpc.WithTransportCredentials(creds), grpc.WithBlock(),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(raw{})))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	in, out := []byte("hello"), []byte(nil)
	if err := conn.Invoke(ctx, "/demo.Catalog/Ping", &in, &out); err != nil || string(out) != "pong:hello" {
		log.Fatalf("Ping: %q %v", out, err)
	}
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/demo.Catalog/List")
	if err != nil {
		log.Fatal(err)
	}
	all := []byte("all")
	if err := stream.SendMsg(&all); err != nil {
		log.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		log.Fatal(err)
	}
	for i := 0; ; i++ {
		var item []byte
		err := stream.RecvMsg(&item)
		if err == io.EOF {
			if i != 3 {
				log.Fatalf("List: %d items", i)
			}
			break
		}
		if err != nil || string(item) != fmt.Sprintf("item%d", i) {
			log.Fatalf("List: %q %v", item, err)
		}
	}
	x := []byte("x")
	err = conn.Invoke(ctx, "/demo.Catalog/Get", &x, &out)
	if status.Code(err) != codes.NotFound {
		log.Fatalf("Get: %v", err)
	}
}

func main() {
	doServe := flag.Bool("serve", false, "serve demo.Catalog over TLS")
	certFile := flag.String("cert", "", "PEM certificate (with -serve)")
	keyFile := flag.String("key", "", "PEM key (with -serve)")
	addr := flag.String("call", "", "call demo.Catalog at this address over TLS")
	wait := flag.Bool("wait", false, "with -call: read a line from stdin first")
	flag.Parse()
	if *wait {
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	switch {
	case *doServe:
		serve(*certFile, *keyFile)
	case *addr != "":
		call(*addr)
	default:
		log.Fatal("usage: grpcdemo -serve -cert CERT -key KEY | grpcdemo -call ADDR")
	}
}
