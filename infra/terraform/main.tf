data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  tags = {
    Project     = "forewarn"
    Environment = var.name
    ManagedBy   = "terraform"
  }
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
}

# ---- KMS: one customer-managed key encrypts the cluster's Secrets, MSK, ElastiCache, S3 and logs -------

data "aws_iam_policy_document" "kms" {
  # checkov:skip=CKV_AWS_109:The key policy's root statement delegates to IAM, as AWS requires for a usable key
  # checkov:skip=CKV_AWS_111:The key policy's root statement delegates to IAM, as AWS requires for a usable key
  # checkov:skip=CKV_AWS_356:A key policy's resource is always the key itself ("*" means this key)
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
  # Managed node groups launch through Auto Scaling, whose service-linked role creates the encrypted
  # EBS volumes: without these rights the nodes never start.
  statement {
    sid       = "AutoScalingEbs"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"]
    }
  }
  statement {
    sid       = "CloudWatchLogsEncrypt"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_kms_key" "main" {
  description             = "${var.name}: EKS secrets, MSK, ElastiCache, S3 and logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "main" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.main.key_id
}
