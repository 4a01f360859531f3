// The AWS SDK for JavaScript v3 against the proxy, as an application uses it.
// Env: ENDPOINT, ACCESS, SECRET, BUCKET, WORKDIR (holds large.bin). Prints a JSON report.
import { createReadStream, readFileSync, writeFileSync } from "node:fs";
import {
  S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand, HeadObjectCommand,
  ListObjectsV2Command, DeleteObjectCommand,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";

const { ENDPOINT, ACCESS, SECRET, BUCKET, WORKDIR } = process.env;
const s3 = new S3Client({
  endpoint: ENDPOINT,
  region: "us-east-1",
  forcePathStyle: true,
  credentials: { accessKeyId: ACCESS, secretAccessKey: SECRET },
  maxAttempts: 1,
});
const body = async (key) => Buffer.from(
  await (await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body.transformToByteArray());

await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: "buffer.txt", Body: Buffer.from("from a Buffer") }));
// A stream body: aws-chunked with a trailing CRC32, even over plain HTTP.
await s3.send(new PutObjectCommand({
  Bucket: BUCKET, Key: "stream.bin", Body: createReadStream(`${WORKDIR}/large.bin`),
  ContentLength: readFileSync(`${WORKDIR}/large.bin`).length,
}));
await new Upload({
  client: s3, params: { Bucket: BUCKET, Key: "multipart.bin", Body: createReadStream(`${WORKDIR}/large.bin`) },
  partSize: 5 * 1024 * 1024, queueSize: 3,
}).done();

const listed = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }));
writeFileSync(`${WORKDIR}/multipart.back`, await body("multipart.bin"));
const warm = (await body("warm.txt")).toString();
const warmHead = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "warm.txt" }));
const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: "buffer.txt" }), { expiresIn: 300 });
const presigned = await (await fetch(url)).text();
await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: "buffer.txt" }));

console.log(JSON.stringify({
  listed: (listed.Contents ?? []).map((o) => o.Key).sort(),
  warm, warmLength: warmHead.ContentLength, presigned,
}));
