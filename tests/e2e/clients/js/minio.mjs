// The MinIO JavaScript client against the proxy.
// Env: PROXY_PORT, ACCESS, SECRET, BUCKET, WORKDIR (holds large.bin). Prints a JSON report.
import { writeFileSync } from "node:fs";
import * as Minio from "minio";

const { PROXY_PORT, ACCESS, SECRET, BUCKET, WORKDIR } = process.env;
const client = new Minio.Client({
  endPoint: "127.0.0.1", port: Number(PROXY_PORT), useSSL: false,
  accessKey: ACCESS, secretKey: SECRET, region: "us-east-1", pathStyle: true,
  partSize: 5 * 1024 * 1024,
});
const read = async (key) => {
  const chunks = [];
  for await (const chunk of await client.getObject(BUCKET, key)) chunks.push(chunk);
  return Buffer.concat(chunks);
};

await client.makeBucket(BUCKET, "us-east-1");
await client.putObject(BUCKET, "small.txt", Buffer.from("from minio-js"));
await client.fPutObject(BUCKET, "large.bin", `${WORKDIR}/large.bin`);  // multipart

const listed = [];
for await (const item of client.listObjectsV2(BUCKET, "", true)) listed.push(item.name);
writeFileSync(`${WORKDIR}/large.back`, await read("large.bin"));
const warm = (await read("warm.txt")).toString();
const warmSize = (await client.statObject(BUCKET, "warm.txt")).size;
const url = await client.presignedGetObject(BUCKET, "small.txt", 300);
const presigned = await (await fetch(url)).text();
await client.removeObject(BUCKET, "small.txt");

console.log(JSON.stringify({ listed: listed.sort(), warm, warmLength: warmSize, presigned }));
