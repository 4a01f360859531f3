package main

import (
	"bytes"
	"context"
	"net/url"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// minio-go v7: signed streaming uploads over HTTP, unsigned over HTTPS; with trailing headers,
// each multipart part carries a crc32c trailer (signed over HTTP, unsigned over HTTPS).
type minioClient struct {
	c      *minio.Client
	bucket string
}

const partSize = 5 * 1024 * 1024

func newMinio(s settings, trailing bool) (client, error) {
	endpoint, err := url.Parse(s.endpoint)
	if err != nil {
		return nil, err
	}
	c, err := minio.New(endpoint.Host, &minio.Options{
		Creds:           credentials.NewStaticV4(s.access, s.secret, ""),
		Secure:          endpoint.Scheme == "https",
		Region:          "us-east-1",
		Transport:       s.transport,
		TrailingHeaders: trailing,
		BucketLookup:    minio.BucketLookupPath,
	})
	return &minioClient{c, s.bucket}, err
}

func (m *minioClient) createBucket(ctx context.Context) error {
	return m.c.MakeBucket(ctx, m.bucket, minio.MakeBucketOptions{})
}

func (m *minioClient) put(ctx context.Context, key string, body []byte) error {
	_, err := m.c.PutObject(ctx, m.bucket, key, bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ContentType: "application/octet-stream"})
	return err
}

func (m *minioClient) upload(ctx context.Context, key, path string) error {
	_, err := m.c.FPutObject(ctx, m.bucket, key, path, minio.PutObjectOptions{PartSize: partSize})
	return err
}

func (m *minioClient) get(ctx context.Context, key string) ([]byte, error) {
	object, err := m.c.GetObject(ctx, m.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer object.Close()
	var body bytes.Buffer
	_, err = body.ReadFrom(object)
	return body.Bytes(), err
}

func (m *minioClient) download(ctx context.Context, key, path string) error {
	return m.c.FGetObject(ctx, m.bucket, key, path, minio.GetObjectOptions{})
}

func (m *minioClient) list(ctx context.Context) ([]string, error) {
	keys := []string{}
	for object := range m.c.ListObjects(ctx, m.bucket, minio.ListObjectsOptions{Recursive: true}) {
		if object.Err != nil {
			return keys, object.Err
		}
		keys = append(keys, object.Key)
	}
	return keys, nil
}

func (m *minioClient) size(ctx context.Context, key string) (int64, error) {
	info, err := m.c.StatObject(ctx, m.bucket, key, minio.StatObjectOptions{})
	return info.Size, err
}

func (m *minioClient) presign(ctx context.Context, key string) (string, error) {
	u, err := m.c.PresignedGetObject(ctx, m.bucket, key, 5*time.Minute, nil)
	if err != nil {
		return "", err
	}
	return u.String(), nil
}

func (m *minioClient) remove(ctx context.Context, key string) error {
	return m.c.RemoveObject(ctx, m.bucket, key, minio.RemoveObjectOptions{})
}
