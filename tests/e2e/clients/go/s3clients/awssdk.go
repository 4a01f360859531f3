package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The AWS SDK for Go v2: path-style addressing against a custom endpoint; multipart through
// the transfer manager (5 MiB parts).
type awsSdkClient struct {
	c      *s3.Client
	bucket *string
}

func newAwsSdk(s settings) (client, error) {
	c := s3.New(s3.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider(s.access, s.secret, ""),
		EndpointResolver: s3.EndpointResolverFromURL(s.endpoint),
		UsePathStyle:     true,
		HTTPClient:       &http.Client{Transport: s.transport},
	})
	return &awsSdkClient{c, aws.String(s.bucket)}, nil
}

func (a *awsSdkClient) createBucket(ctx context.Context) error {
	_, err := a.c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: a.bucket})
	return err
}

func (a *awsSdkClient) put(ctx context.Context, key string, body []byte) error {
	_, err := a.c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: a.bucket, Key: aws.String(key), Body: bytes.NewReader(body),
	})
	return err
}

func (a *awsSdkClient) upload(ctx context.Context, key, path string) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	_, err = manager.NewUploader(a.c).Upload(ctx, &s3.PutObjectInput{
		Bucket: a.bucket, Key: aws.String(key), Body: file,
	})
	return err
}

func (a *awsSdkClient) get(ctx context.Context, key string) ([]byte, error) {
	out, err := a.c.GetObject(ctx, &s3.GetObjectInput{Bucket: a.bucket, Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

func (a *awsSdkClient) download(ctx context.Context, key, path string) error {
	file, err := os.Create(path)
	if err != nil {
		return err
	}
	defer file.Close()
	_, err = manager.NewDownloader(a.c).Download(ctx, file,
		&s3.GetObjectInput{Bucket: a.bucket, Key: aws.String(key)})
	return err
}

func (a *awsSdkClient) list(ctx context.Context) ([]string, error) {
	keys := []string{}
	pages := s3.NewListObjectsV2Paginator(a.c, &s3.ListObjectsV2Input{Bucket: a.bucket})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return keys, err
		}
		for _, object := range page.Contents {
			keys = append(keys, *object.Key)
		}
	}
	return keys, nil
}

func (a *awsSdkClient) size(ctx context.Context, key string) (int64, error) {
	out, err := a.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: a.bucket, Key: aws.String(key)})
	if err != nil {
		return 0, err
	}
	return out.ContentLength, nil
}

func (a *awsSdkClient) presign(ctx context.Context, key string) (string, error) {
	signed, err := s3.NewPresignClient(a.c).PresignGetObject(ctx,
		&s3.GetObjectInput{Bucket: a.bucket, Key: aws.String(key)}, s3.WithPresignExpires(5*time.Minute))
	if err != nil {
		return "", err
	}
	return signed.URL, nil
}

func (a *awsSdkClient) remove(ctx context.Context, key string) error {
	_, err := a.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: a.bucket, Key: aws.String(key)})
	return err
}
