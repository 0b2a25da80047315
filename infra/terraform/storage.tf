# ---- S3: the data lake (Delta tables written by the ETL stream), the MLflow artifacts, their access logs -

module "access_logs" {
  source      = "./modules/bucket"
  name        = "${var.name}-access-logs-${local.account_id}"
  kms_key_arn = aws_kms_key.main.arn
}

module "lake" {
  source            = "./modules/bucket"
  name              = "${var.name}-lake-${local.account_id}"
  kms_key_arn       = aws_kms_key.main.arn
  access_log_bucket = module.access_logs.id
}

module "artifacts" {
  source            = "./modules/bucket"
  name              = "${var.name}-artifacts-${local.account_id}"
  kms_key_arn       = aws_kms_key.main.arn
  access_log_bucket = module.access_logs.id
}
