from rest_framework import status

from config.api.errors import DomainError, Duplicate, TooManyRequests, ValidationFailed


class EmailTaken(Duplicate):
    code = "email_taken"
    title = "An account with this e-mail already exists."


class InvalidCredentials(DomainError):
    code = "invalid_credentials"
    status = status.HTTP_401_UNAUTHORIZED
    title = "E-mail or password is incorrect."


class AccountLocked(TooManyRequests):
    code = "account_locked"
    title = "Too many failed attempts. Try again later."


class InvalidCode(ValidationFailed):
    code = "invalid_code"
    title = "The code is wrong, expired or already used."


class WeakPassword(ValidationFailed):
    code = "weak_password"
    title = "The password is too weak."


class WrongPassword(ValidationFailed):
    code = "wrong_password"
    title = "The current password is incorrect."


class InvalidGoogleToken(DomainError):
    code = "invalid_google_token"
    status = status.HTTP_401_UNAUTHORIZED
    title = "The Google ID token is invalid."


class GoogleSignInDisabled(DomainError):
    code = "google_sign_in_disabled"
    status = status.HTTP_404_NOT_FOUND
    title = "Google sign-in is not configured."


class GoogleUnavailable(DomainError):
    code = "google_unavailable"
    status = status.HTTP_503_SERVICE_UNAVAILABLE
    title = "Google sign-in is temporarily unavailable. Try again later."
