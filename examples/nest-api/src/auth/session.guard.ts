// The fast session check: the signed cookie is verified here and the session
// Better Auth stored in Redis is read with one GET, without running Better Auth.
import {
  CanActivate,
  ExecutionContext,
  Inject,
  Injectable,
  ServiceUnavailableException,
  UnauthorizedException,
} from '@nestjs/common'
import type { SessionVerifier, VerifiedSession } from '@atlas-erp/redis/better-auth'
import type { Request } from 'express'

export const SESSION_VERIFIER = Symbol('SESSION_VERIFIER')

/** What the guard leaves on the request for the handlers. */
export interface AuthenticatedRequest extends Request {
  auth: VerifiedSession
}

@Injectable()
export class SessionGuard implements CanActivate {
  constructor(@Inject(SESSION_VERIFIER) private readonly verifier: SessionVerifier) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const req = context.switchToHttp().getRequest<Request & Partial<AuthenticatedRequest>>()
    let session: VerifiedSession | null
    try {
      // A Cookie header, or `Authorization: Bearer <signed token>` (Better Auth's bearer plugin).
      // Input that cannot be valid (none, a bad signature) costs no round trip.
      session = (await this.verifier.verify(req.headers.cookie)) ?? (await this.verifier.verify(req.headers.authorization))
    } catch {
      // ERR_TIMEOUT, ERR_CONNECTION, …: Redis could not answer, which is not the caller's fault.
      throw new ServiceUnavailableException('session store unavailable')
    }
    if (!session) throw new UnauthorizedException('sign in first')
    req.auth = session
    return true
  }
}
