// s3clients tells the story of tests/support/client_scenario.py with one Go S3 client:
//
//	s3clients aws-sdk-go-v2 | minio-go | minio-go-trailing
//
// Settings come from the environment (ENDPOINT, ACCESS, SECRET, BUCKET, WORKDIR, SMALL, CA_FILE
// for HTTPS); the report is one line of JSON on stdout. Built offline from Debian's Go packages.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
)

// client is what the scenario needs of an S3 client.
type client interface {
	createBucket(ctx context.Context) error
	put(ctx context.Context, key string, body []byte) error
	upload(ctx context.Context, key, path string) error // multipart
	get(ctx context.Context, key string) ([]byte, error)
	download(ctx context.Context, key, path string) error
	list(ctx context.Context) ([]string, error)
	size(ctx context.Context, key string) (int64, error) // HEAD
	presign(ctx context.Context, key string) (string, error)
	remove(ctx context.Context, key string) error
}

type settings struct {
	endpoint, access, secret, bucket, workdir string
	transport                                 *http.Transport
}

func fromEnvironment() (settings, error) {
	s := settings{
		endpoint: os.Getenv("ENDPOINT"), access: os.Getenv("ACCESS"), secret: os.Getenv("SECRET"),
		bucket: os.Getenv("BUCKET"), workdir: os.Getenv("WORKDIR"),
		transport: http.DefaultTransport.(*http.Transport).Clone(),
	}
	if path := os.Getenv("CA_FILE"); path != "" {
		pem, err := os.ReadFile(path)
		if err != nil {
			return s, err
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return s, fmt.Errorf("no certificate in %s", path)
		}
		s.transport.TLSClientConfig = &tls.Config{RootCAs: roots}
	}
	return s, nil
}

// scenario: the same steps, in the same order, for every client; the Python test checks the
// report and then every backend directly.
func scenario(ctx context.Context, c client, workdir string) (map[string]any, error) {
	report := map[string]any{}
	steps := []struct {
		name string
		run  func() error
	}{
		{"create bucket", func() error { return c.createBucket(ctx) }},
		{"put small", func() error { return c.put(ctx, "small.txt", []byte(os.Getenv("SMALL"))) }},
		{"put gone", func() error { return c.put(ctx, "gone.txt", []byte("to be deleted")) }},
		{"upload large", func() error {
			return c.upload(ctx, "large.bin", filepath.Join(workdir, "large.bin"))
		}},
		{"get small", func() error {
			body, err := c.get(ctx, "small.txt")
			report["small"] = string(body)
			return err
		}},
		{"download large", func() error {
			return c.download(ctx, "large.bin", filepath.Join(workdir, "large.back"))
		}},
		{"list", func() error {
			keys, err := c.list(ctx)
			sort.Strings(keys)
			report["listed"] = keys
			return err
		}},
		{"head small", func() error {
			size, err := c.size(ctx, "small.txt")
			report["size"] = size
			return err
		}},
		{"get warm", func() error {
			body, err := c.get(ctx, "warm.txt")
			report["warm"] = string(body)
			return err
		}},
		{"presign small", func() error {
			url, err := c.presign(ctx, "small.txt")
			report["presigned"] = url
			return err
		}},
		{"delete gone", func() error { return c.remove(ctx, "gone.txt") }},
	}
	for _, step := range steps {
		if err := step.run(); err != nil {
			return report, fmt.Errorf("%s: %w", step.name, err)
		}
	}
	return report, nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: s3clients aws-sdk-go-v2|minio-go|minio-go-trailing")
		os.Exit(2)
	}
	s, err := fromEnvironment()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var c client
	switch os.Args[1] {
	case "aws-sdk-go-v2":
		c, err = newAwsSdk(s)
	case "minio-go":
		c, err = newMinio(s, false)
	case "minio-go-trailing":
		c, err = newMinio(s, true)
	default:
		err = fmt.Errorf("unknown client %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	report, err := scenario(context.Background(), c, s.workdir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, _ := json.Marshal(report)
	fmt.Println(string(out))
}
