//! The five ways archway is run — each CI's log dialect and input spelling — for tests that
//! cover every one.

use archway::ci::Provider;
use archway::ci::vars::InputVar;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dialect {
    GitHub,
    GitLab,
    BitbucketPipe,
    BitbucketStep,
    Local,
}

pub const DIALECTS: [Dialect; 5] =
    [Dialect::GitHub, Dialect::GitLab, Dialect::BitbucketPipe, Dialect::BitbucketStep, Dialect::Local];

impl Dialect {
    /// The variable that carries `input` here.
    pub fn var(self, input: &InputVar) -> &'static str {
        match self {
            Dialect::GitHub => input.github,
            Dialect::BitbucketPipe => input.pipe,
            _ => input.archway,
        }
    }

    pub fn provider(self) -> Provider {
        match self {
            Dialect::GitHub => Provider::GitHub,
            Dialect::GitLab => Provider::GitLab,
            Dialect::BitbucketPipe => Provider::Bitbucket { pipe: true },
            Dialect::BitbucketStep => Provider::Bitbucket { pipe: false },
            Dialect::Local => Provider::Local,
        }
    }
}
