// Package wecom is Huabu's WeCom (企业微信) provider: the three channels
// wecom.app (app messages to staff), wecom.customer (mass-send tasks to
// customers, confirmed by their owner) and wecom.group (customer groups),
// and the API client they share with the staff SOP activities, the
// directory sync and `huabu staff`: mass-send task tracking, reminders,
// welcome messages, template cards, the address book and customer lists.
//
// Importing the package registers the channels with package channels; the
// app builds the client for staff tasks with Configured (nil when WeCom is
// not the configured provider) and passes it in. Access tokens are cached
// per corp and secret across every client of the process.
package wecom
