# Production environment of Forewarn on AWS: EKS, MSK (Kafka), ElastiCache (Redis), S3 (lake and
# artifacts), one KMS key for all of them, and the k8s/overlays/prod kustomization applied on top with
# the managed endpoints in place of the in-cluster Kafka and Redis. docs/DEPLOYMENT.md walks through it.
terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.60"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.31"
    }
    kustomization = {
      source  = "kbst/kustomization"
      version = "~> 0.9"
    }
  }

  # State in S3 with locking; the bucket and table are created once by hand (docs/DEPLOYMENT.md, step 1)
  # and passed with `terraform init -backend-config=...`.
  backend "s3" {}
}

provider "aws" {
  region = var.region
  default_tags {
    tags = local.tags
  }
}

provider "kubernetes" {
  host                   = aws_eks_cluster.main.endpoint
  cluster_ca_certificate = base64decode(aws_eks_cluster.main.certificate_authority[0].data)
  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", aws_eks_cluster.main.name, "--region", var.region]
  }
}

provider "kustomization" {
  kubeconfig_raw = local.kubeconfig
}
