# The scenario of tests/support/client_scenario.py with the AWS SDK for Ruby v3 (Debian's
# ruby-aws-sdk-s3). Settings from the environment (ENDPOINT, ACCESS, SECRET, BUCKET, WORKDIR,
# SMALL, CA_FILE for HTTPS); the report is one line of JSON on stdout.
require "aws-sdk-s3"
require "json"

options = {
  endpoint: ENV.fetch("ENDPOINT"),
  region: "us-east-1",
  credentials: Aws::Credentials.new(ENV.fetch("ACCESS"), ENV.fetch("SECRET")),
  force_path_style: true,
  retry_limit: 0,
}
options[:ssl_ca_bundle] = ENV["CA_FILE"] if ENV["CA_FILE"]
client = Aws::S3::Client.new(**options)
bucket = Aws::S3::Bucket.new(ENV.fetch("BUCKET"), client: client)
workdir = ENV.fetch("WORKDIR")
report = {}

bucket.create
bucket.object("small.txt").put(body: ENV.fetch("SMALL"))
bucket.object("gone.txt").put(body: "to be deleted")
bucket.object("large.bin").upload_file(File.join(workdir, "large.bin"),
                                       multipart_threshold: 5 * 1024 * 1024)
report[:small] = bucket.object("small.txt").get.body.read
# By ranges: the default (by parts) needs a Content-Range on GetObject partNumber=N, which moto
# leaves out (it sends the whole object), also without the proxy.
bucket.object("large.bin").download_file(File.join(workdir, "large.back"),
                                         mode: "get_range", chunk_size: 5 * 1024 * 1024)
report[:listed] = bucket.objects.map(&:key).sort
report[:size] = bucket.object("small.txt").content_length  # HEAD
report[:warm] = bucket.object("warm.txt").get.body.read
report[:presigned] = bucket.object("small.txt").presigned_url(:get, expires_in: 300)
bucket.object("gone.txt").delete
puts JSON.generate(report)
